"""Example handler packages (see README, "Your own job types")."""
