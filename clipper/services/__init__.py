"""Services: what the CLI and dashboard call. Each takes a Context and plain values."""
