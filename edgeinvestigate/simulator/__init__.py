"""The incident simulator: a job system on Cloudflare Queues + Workers, with known root causes.

>>> import edgeinvestigate as ei
>>> summary = ei.simulate("default", "incident", seed=1)        # doctest: +SKIP
>>> msgs, template_ids = corpus(1_000_000, seed=0)                # doctest: +SKIP

``simulate`` writes the same incident as ``wrangler tail`` JSON, Tail Worker TraceItems, Logpush
``workers_trace_events`` gz files, Workers Logs events and the DLQ, plus ``ground_truth.json``.
Scenarios are TOML files in ``scenarios/`` (``list_scenarios()``); see ARCHITECTURE.md,
"Simulator output", for the layout.
"""

from __future__ import annotations

from edgeinvestigate.simulator._corpus import corpus, corpus_templates
from edgeinvestigate.simulator._scenario import (
    JOB_TYPES,
    IncidentSpec,
    Scenario,
    list_scenarios,
    load_scenario,
)
from edgeinvestigate.simulator._simulate import FORMATS, LAYOUT, SimulationSummary, simulate

__all__ = [
    "FORMATS",
    "JOB_TYPES",
    "LAYOUT",
    "IncidentSpec",
    "Scenario",
    "SimulationSummary",
    "corpus",
    "corpus_templates",
    "list_scenarios",
    "load_scenario",
    "simulate",
]
