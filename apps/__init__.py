"""Domain applications built on the framework."""
