"""Rendering the texts of a run: template indices -> messages, with the context of their job.

A field the job knows (``job``, ``tenant``, ``type``, the poison ``bad`` value, ``email``/``template``/
``url`` from the payload) is taken from the job, so an error quotes the job it failed on; the other
fields are drawn from the run's random stream.
"""

from __future__ import annotations

import numpy as np

from edgeinvestigate.simulator._payloads import JobPayloads, context_of
from edgeinvestigate.simulator._production import Production
from edgeinvestigate.simulator._scenario import JOB_TYPES
from edgeinvestigate.simulator._templates import Templates

__all__ = ["Texts", "job_payloads"]


def job_payloads(seed: int, jobs: Production) -> JobPayloads:
    """The ``QueueMessage.payload`` of every job (built lazily, one seeded stream per job)."""
    return JobPayloads(
        seed,
        [JOB_TYPES[int(t)] for t in jobs.job_type.tolist()],
        [jobs.tenants[int(t)] for t in jobs.job_tenant.tolist()],
        jobs.job_ids,
        jobs.job_ts.tolist(),
        jobs.poison,
    )


class Texts:
    """Renders template indices of a run into texts, one template at a time."""

    def __init__(
        self, templates: Templates, jobs: Production, payloads: JobPayloads, rng: np.random.Generator
    ) -> None:
        self.templates = templates
        self.jobs = jobs
        self.payloads = payloads
        self.rng = rng

    def render(self, tpl: np.ndarray, jobs: np.ndarray | None = None) -> list[str | None]:
        """Texts of the given template indices (-1 -> None), with job context where ``jobs`` says."""
        out: list[str | None] = [None] * len(tpl)
        if not len(tpl):
            return out
        for ti in np.unique(tpl[tpl >= 0]).tolist():
            where = np.flatnonzero(tpl == ti)
            t = self.templates.spec[ti]
            ctx = self._context(set(t.fields), jobs[where].tolist()) if jobs is not None else {}
            texts = t.render(self.rng, len(where), ctx)
            for w, txt in zip(where.tolist(), texts, strict=True):
                out[w] = txt
        return out

    def _context(self, fields: set[str], js: list[int]) -> dict[str, list[str]]:
        """Values of ``fields`` taken from the jobs ``js`` (a field some job lacks is left out)."""
        jobs = self.jobs
        ctx: dict[str, list[str]] = {}
        if "job" in fields:
            ctx["job"] = [jobs.job_ids[j] for j in js]
        if "tenant" in fields:
            ctx["tenant"] = [jobs.tenants[int(jobs.job_tenant[j])] for j in js]
        if "type" in fields:
            ctx["type"] = [JOB_TYPES[int(jobs.job_type[j])] for j in js]
        if "bad" in fields:
            ctx["bad"] = [f'"{jobs.poison.get(j, ("", ""))[1]}"' for j in js]
        need = fields & {"email", "template", "url"}
        if need:
            ctxs = [context_of(self.payloads(j)) for j in js]
            for f in need:
                if all(f in c for c in ctxs):
                    ctx[f] = [c[f] for c in ctxs]
        return ctx
