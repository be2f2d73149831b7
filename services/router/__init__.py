"""Router: validates, de-duplicates and places jobs, and runs the delay machinery."""
