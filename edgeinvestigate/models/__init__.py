"""The canonical frames, the load report, findings and other shared models (imports: ground floor only)."""
