"""Message contracts: what travels on the wire (contract sections 3.1 and 3.2)."""
