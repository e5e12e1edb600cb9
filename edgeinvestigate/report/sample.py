"""``sample_bundle()``: the bundled sample incident as an evidence bundle (notebooks, demo, tests).

The ``default`` scenario at its small default size with a fixed seed is simulated once into a cache
folder keyed by the package version, the scenario's content hash and a hash of the simulator's
code, loaded with :func:`evidence.bundle.load` (the Tail Worker TraceItems), given the DLQ frame from
``dlq/messages.json``, clustered and saved as an evidence bundle with its clusters stored. Later
calls open the cached bundle.
Concurrent first calls are safe: each builds in its own temporary folder and the first rename wins.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from edgeinvestigate._version import __version__
from edgeinvestigate.simulator._scenario import load_scenario
from edgeinvestigate.simulator._simulate import simulate

if TYPE_CHECKING:
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["SAMPLE_SCENARIO", "SAMPLE_SEED", "sample_bundle", "sample_dir"]

SAMPLE_SCENARIO = "default"
SAMPLE_SEED = 7
CACHE_ENV = "EDGEINVESTIGATE_CACHE"


def _cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "edgeinvestigate"


def _code_digest() -> str:
    """A hash of the code that makes the sample (simulator, loaders, bundle): never serve a stale one."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for area in ("simulator", "sources", "evidence", "models", "analysis"):  # analysis: stored clusters
        for p in sorted((package / area).rglob("*.py")):
            h.update(str(p.relative_to(package)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:8]


def sample_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the sample: ``incident/`` (simulator output) and ``bundle/`` (evidence)."""
    sc = load_scenario(SAMPLE_SCENARIO)
    key = f"sample-{__version__}-{sc.name}-{sc.digest()}-{_code_digest()}-s{SAMPLE_SEED}"
    if path is not None:
        return Path(path)
    root = _cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, delete=True)  # noqa: SIM115 - just a probe
        probe.close()
    except OSError:
        root = Path(tempfile.gettempdir()) / "edgeinvestigate-cache"
        root.mkdir(parents=True, exist_ok=True)
    return root / key


def _summary_truth(gt_path: Path) -> dict[str, Any]:
    gt: dict[str, Any] = msgspec.json.decode(gt_path.read_bytes())
    return {k: v for k, v in gt.items() if k not in ("errors", "dlq")}


def _build(dest: Path) -> None:
    from edgeinvestigate.analysis.clustering import cluster, store_clusters
    from edgeinvestigate.evidence.bundle import load
    from edgeinvestigate.evidence.dlq import with_dlq_file

    incident = dest / "incident"
    summary = simulate(SAMPLE_SCENARIO, incident, seed=SAMPLE_SEED)
    ev = load([incident / "traceitems" / "traceitems.jsonl"], strict=True)
    ev = with_dlq_file(ev, incident / "dlq" / "messages.json")
    ev.manifest["ground_truth"] = _summary_truth(summary.ground_truth)
    ev.manifest["simulation"] = {
        "scenario": summary.scenario,
        "seed": summary.seed,
        "invocations": summary.invocations,
        # relative to the sample folder (it is built elsewhere and moved); made absolute on open
        "incident_dir": "incident",
        "ground_truth_path": "incident/ground_truth.json",
    }
    ev = ev.in_storage_order()
    ev = store_clusters(ev, cluster(ev, stored=False))  # like collect: clusters computed once, stored
    ev.save(dest / "bundle")


def sample_bundle(path: str | os.PathLike[str] | None = None) -> Evidence:
    """The sample incident as :class:`~edgeinvestigate.evidence.bundle.Evidence` (built on first use).

    ``path``: where to keep it (default: a cache folder under ``$EDGEINVESTIGATE_CACHE`` or
    ``~/.cache/edgeinvestigate``). The simulator output (with ``ground_truth.json``) is in
    ``<path>/incident``, the bundle in ``<path>/bundle``; ``ev.manifest["ground_truth"]`` holds the
    ground truth without the per-message lists.
    """
    from edgeinvestigate.evidence.bundle import Evidence

    final = sample_dir(path)
    if not (final / "bundle" / "manifest.json").is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # a half-built folder from a crash: rebuild it
            shutil.rmtree(final, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            _build(tmp)
            try:
                tmp.rename(final)
            except OSError:
                if not (final / "bundle" / "manifest.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    ev = Evidence.open(final / "bundle")
    sim = ev.manifest.get("simulation")
    if isinstance(sim, dict):
        for key in ("incident_dir", "ground_truth_path"):
            if isinstance(sim.get(key), str):
                sim[key] = str(final / sim[key])
    return ev
