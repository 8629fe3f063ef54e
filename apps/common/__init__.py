"""Small domain glue shared by the apps (progress reporting, ...)."""
