"""Storage: the tables, database sessions and migrations, and the shared Redis connection."""
