"""Notebooks and incident reports: papermill runner, parameters, kernel helpers, HTML export, redaction."""
