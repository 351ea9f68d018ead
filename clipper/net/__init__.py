"""Network safety: URL rules, the guard proxy every fetch goes through, and outgoing webhooks."""
