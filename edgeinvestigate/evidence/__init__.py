"""The evidence bundle: `load()`, `Evidence` (save / open / merge / window) and deduplication;
`collect()` (files, Workers Logs and DLQs into one bundle), the DLQ and Workers Logs bundles."""
