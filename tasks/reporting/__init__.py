"""Reports over whole runs."""
