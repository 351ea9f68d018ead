"""Services: what the CLI and dashboard call. Each is `fn(ctx, actor, ...)` and checks a named
permission (`@requires`, clipper.permissions) before it touches anything."""
