"""Where evidence comes from: the source registry, file loaders (`files/`) and API sources (`api/`)."""
