"""The true message templates of a run: incident errors, noise errors, uncaught bugs, chatter.

Arrays of the simulation store template *indices* into :class:`Templates`; ``info`` is what the
ground truth publishes, ``spec`` renders the texts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeinvestigate.simulator._catalog import CHATTER, NOISE_ERRORS, UNCAUGHT
from edgeinvestigate.simulator._scenario import JOB_TYPES, Scenario
from edgeinvestigate.simulator._simulation import TemplateInfo
from edgeinvestigate.simulator._values import Template

__all__ = ["Templates", "per_type_choice", "pick_cum"]


class Templates:
    """The registry of every true template of a run (indices are what arrays store)."""

    def __init__(self, scenario: Scenario) -> None:
        self.info: list[TemplateInfo] = []
        self.spec: list[Template] = []
        self.incident_tpls: list[list[int]] = []
        self.incident_w: list[np.ndarray] = []
        for inc in scenario.incidents:
            idx = []
            for k, err in enumerate(inc.errors):
                tid = f"{inc.id}#{k + 1}"
                kind = (
                    "limit"
                    if inc.kind == "cpu_limits"
                    else ("transient" if inc.is_transient else "permanent")
                )
                t = Template(tid, err.template, kind=kind, name=err.name)
                outcome = err.outcome if inc.kind == "cpu_limits" else None
                idx.append(self._add(t, "incident", inc.id, outcome))
            self.incident_tpls.append(idx)
            w = np.array([e.weight for e in inc.errors], dtype=float)
            self.incident_w.append(np.cumsum(w / w.sum()) if len(w) else w)  # a consumer stall has none
        self.noise: list[int] = [self._add(n.template, "noise") for n in NOISE_ERRORS]
        self.uncaught: list[int] = [self._add(t, "uncaught") for t in UNCAUGHT]
        self.chatter: list[int] = [self._add(c.template, "chatter") for c in CHATTER]
        self.transient = np.array([i.kind == "transient" for i in self.info])

    def _add(self, t: Template, source: str, incident: str | None = None, outcome: str | None = None) -> int:
        self.info.append(
            TemplateInfo(t.id, t.text, t.kind, source, name=t.name, incident=incident, outcome=outcome)
        )
        self.spec.append(t)
        return len(self.info) - 1


def per_type_choice(
    items: list[Any], tpl_idx: list[int], weights: list[float]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each job type: the global template indices that apply and their cumulative weights."""
    idx_by_type, cum_by_type = [], []
    for jt in JOB_TYPES:
        sel = [k for k, it in enumerate(items) if "*" in it.job_types or jt in it.job_types]
        w = np.array([weights[k] for k in sel], dtype=float)
        idx_by_type.append(np.array([tpl_idx[k] for k in sel], dtype=np.int32))
        cum_by_type.append(np.cumsum(w / w.sum()))
    return idx_by_type, cum_by_type


def pick_cum(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices drawn by the uniforms ``u`` from the cumulative weights ``cum``."""
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
