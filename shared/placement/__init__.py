"""Placement rules and decisions, shared by the router and the status API's pre-checks."""
