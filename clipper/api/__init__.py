"""The HTTP API (FastAPI): the same services as the CLI and dashboard, with their role checks."""
