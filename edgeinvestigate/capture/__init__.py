"""Live telemetry to files: the live tail and the Tail Worker collector."""
