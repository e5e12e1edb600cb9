"""The evidence bundle: `load()`, `Evidence` (save / open / merge / window) and deduplication."""
