"""Clustering, triage, deploys, root-cause analysis (`analyze` -> `Findings`) and plot builders."""
