"""Clustering benchmark: edgeinvestigate vs Drain3 0.9.11 (default settings), side by side in one run.

    python benchmarks/bench_cluster.py [--n 1000000] [--seed 0] [--templates 200] [--bundle]

Both run on the same messages from ``edgeinvestigate.simulator.corpus`` (200 true templates, Zipf
frequencies, every kind of variable part, templates that differ only in one constant word). For each
we print lines/s (wall clock, median of ``--repeat`` interleaved runs; input: a Python list of
strings, output: a group label per message) and
the grouping accuracy (GA, Loghub's definition: a message counts as correct when the predicted group
that holds it contains exactly the messages of its true template), then the ratios against the
targets: >= 2x Drain3's lines/s with all masking on, and GA >= 0.97.

``--bundle`` also measures ``ei.cluster`` end to end on an evidence bundle holding the same messages
(``cluster_bundle.py``: error log lines and exceptions in invocations, plus chatter lines to skip):
open the bundle, read its frames, cluster (``stored=False``), against Drain3 on the same messages, in
interleaved runs, the ratio printed side by side with the targets; reading the clusters ``collect``
stored in the bundle instead (their table and all their rows, ``Clusters.assign``); and the peak
memory (RSS) of a fresh process that opens the bundle and clusters it.

Drain3 is a benchmark-only dependency (the ``dev`` extra). Ratios, not absolute timings, are what
the README quotes: absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import gc
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TARGET_SPEEDUP = 2.0
TARGET_GA = 0.97


def load_corpus(n: int, seed: int, n_templates: int) -> tuple[list[str], list[int], str]:
    try:
        from edgeinvestigate.simulator import corpus
    except ImportError:
        try:
            from edgeinvestigate.simulator._corpus import corpus
        except ImportError:
            return (*_fallback_corpus(n, seed, n_templates), "fallback generator (simulator not available)")
    msgs, ids = corpus(n, seed=seed, n_templates=n_templates)
    return msgs, ids, "edgeinvestigate.simulator.corpus"


def _fallback_corpus(n: int, seed: int, n_templates: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    templates = [
        f"{words[i % 8]} {words[(i // 8) % 8]} step {{}} failed for {{}} after {{}}ms ({i})"
        for i in range(n_templates)
    ]
    ids = rng.integers(0, n_templates, n).tolist()
    msgs = [
        templates[t].format(int(a), f"{int(b):08x}-aaaa-4bbb-8ccc-{int(b):012x}", int(c))
        for t, a, b, c in zip(
            ids, rng.integers(0, 10**6, n), rng.integers(0, 2**31, n), rng.integers(1, 5000, n), strict=True
        )
    ]
    return msgs, ids


def grouping_accuracy(pred: Sequence[Any] | np.ndarray, truth: Sequence[Any]) -> float:
    """Loghub GA: share of messages whose predicted group equals their true group exactly."""
    df = pd.DataFrame({"p": pd.factorize(np.asarray(pred, dtype=object))[0], "t": list(truth)})
    true_size = df.groupby("t").size()
    g = df.groupby("p")["t"].agg(["nunique", "first", "size"])
    ok = g[(g["nunique"] == 1) & (g["size"].to_numpy() == true_size.loc[g["first"]].to_numpy())]
    return float(ok["size"].sum()) / len(df) if len(df) else 1.0


CPU: dict[str, list[float]] = {"ours": [], "drain3": []}


def run_ours(msgs: list[str]) -> tuple[np.ndarray, float, int]:
    from edgeinvestigate.analysis.clustering import group_texts

    c0 = time.process_time()
    t0 = time.perf_counter()
    grouping = group_texts(msgs)
    dt = time.perf_counter() - t0
    CPU["ours"].append(time.process_time() - c0)
    return grouping.labels, dt, len(grouping.templates)


def run_drain3(msgs: list[str]) -> tuple[list[int], float, int]:
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    logging.getLogger("drain3").setLevel(logging.ERROR)
    miner = TemplateMiner(config=TemplateMinerConfig())  # default settings, no masking
    c0 = time.process_time()
    t0 = time.perf_counter()
    labels = [miner.add_log_message(m)["cluster_id"] for m in msgs]
    dt = time.perf_counter() - t0
    CPU["drain3"].append(time.process_time() - c0)
    return labels, dt, len(miner.drain.clusters)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    finally:
        gc.unfreeze()


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="messages (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--templates", type=int, default=200, help="true templates in the corpus")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (median reported; default 3)")
    ap.add_argument("--skip-drain3", action="store_true", help="only run edgeinvestigate")
    ap.add_argument("--bundle", action="store_true", help="also ei.cluster end to end on a bundle")
    args = ap.parse_args(argv)

    msgs, truth, origin = load_corpus(args.n, args.seed, args.templates)
    print(f"corpus: {len(msgs):,} messages, {len(set(truth))} true templates ({origin})")
    gc.collect()
    gc.freeze()  # the corpus is long-lived: keep the collector from rescanning it during the runs

    run_ours(msgs[: min(len(msgs), 50_000)])  # warm-up: imports, DuckDB and pyarrow allocators
    ours_times: list[float] = []
    d_times: list[float] = []
    ours_labels: np.ndarray | None = None
    d_labels: list[int] | None = None
    ours_n = d_n = 0
    for r in range(args.repeat):  # interleaved, so a busy neighbour slows both alike
        ours_labels, dt, ours_n = run_ours(msgs)
        ours_times.append(dt)
        print(f"  run {r + 1}: edgeinvestigate {dt:.2f} s", flush=True)
        if not args.skip_drain3:
            d_labels, dt, d_n = run_drain3(msgs)
            d_times.append(dt)
            print(f"  run {r + 1}: drain3          {dt:.2f} s", flush=True)
    assert ours_labels is not None
    ours_s = float(np.median(ours_times))
    ours_ga = grouping_accuracy(ours_labels, truth)
    ours_rate = len(msgs) / ours_s
    print(
        f"edgeinvestigate: {ours_rate:>12,.0f} lines/s  GA {ours_ga:.4f}  {ours_n} templates"
        f"  (median of {len(ours_times)}: {ours_s:.2f} s)"
    )
    if args.skip_drain3 or d_labels is None:
        return 0 if ours_ga >= TARGET_GA else 1
    d_s = float(np.median(d_times))
    d_ga = grouping_accuracy(d_labels, truth)
    d_rate = len(msgs) / d_s
    print(
        f"drain3 0.9.11  : {d_rate:>12,.0f} lines/s  GA {d_ga:.4f}  {d_n} templates"
        f"  (median of {len(d_times)}: {d_s:.2f} s)"
    )
    cpu_ours = float(np.median(CPU["ours"][-len(ours_times) :]))
    cpu_d = float(np.median(CPU["drain3"][-len(d_times) :]))
    print(f"cpu time       : edgeinvestigate {cpu_ours:.2f} s (both cores), drain3 {cpu_d:.2f} s (one core)")
    speedup = ours_rate / d_rate
    ok_speed = speedup >= TARGET_SPEEDUP
    ok_ga = ours_ga >= TARGET_GA
    print(
        f"speed ratio    : {speedup:.2f}x Drain3 (target >= {TARGET_SPEEDUP:.0f}x) "
        f"{'MET' if ok_speed else 'NOT MET'}"
    )
    print(
        f"grouping acc.  : {ours_ga:.4f} vs Drain3 {d_ga:.4f} (target >= {TARGET_GA}) "
        f"{'MET' if ok_ga else 'NOT MET'}"
    )
    ok_bundle = run_bundle(args, msgs, truth) if args.bundle else True
    return 0 if ok_speed and ok_ga and ok_bundle else 1


def run_bundle(args: argparse.Namespace, msgs: list[str], truth: list[int]) -> bool:
    """``ei.cluster`` end to end on a bundle vs Drain3 on the same messages (see the module docs)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cluster_bundle import ensure, labels_of

    import edgeinvestigate as ei

    t0 = time.perf_counter()
    plain, stored, rows, _ = ensure(len(msgs), args.seed, args.templates)
    print(f"bundle: {plain.parent} ({time.perf_counter() - t0:.1f} s to make or find)", flush=True)
    times: dict[str, list[float]] = {"e2e": [], "stored": [], "drain3": []}
    cpu: dict[str, list[float]] = {"e2e": [], "drain3": []}
    labels = None
    for r in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = ei.cluster(ei.Evidence.open(plain), stored=False)
        times["e2e"].append(time.perf_counter() - t0)
        cpu["e2e"].append(time.process_time() - c0)
        labels = labels_of(result.assign, rows, len(msgs))
        t0 = time.perf_counter()
        got = ei.cluster(ei.Evidence.open(stored))
        assert len(got.assign) == len(result.assign)  # the rows too (stored ones are read when asked)
        times["stored"].append(time.perf_counter() - t0)
        assert got.origin == "stored", got.note
        _, dt, _ = run_drain3(msgs)
        times["drain3"].append(dt)
        cpu["drain3"].append(CPU["drain3"][-1])
        print(
            f"  run {r + 1}: ei.cluster on the bundle {times['e2e'][-1]:.2f} s, stored clusters "
            f"{times['stored'][-1]:.2f} s, drain3 {dt:.2f} s",
            flush=True,
        )
        del result, got
    med = {k: float(np.median(v)) for k, v in times.items()}
    rate = {k: len(msgs) / v for k, v in med.items()}
    ga = grouping_accuracy(labels, truth)
    speed = rate["e2e"] / rate["drain3"]
    print(f"ei.cluster end to end (open, read, cluster): {rate['e2e']:>12,.0f} lines/s  GA {ga:.4f}")
    print(f"reading the stored clusters and their rows : {rate['stored']:>12,.0f} lines/s")
    print(f"drain3 0.9.11 on the same messages         : {rate['drain3']:>12,.0f} lines/s")
    print(
        f"end-to-end ratio: {speed:.2f}x Drain3 (target >= {TARGET_SPEEDUP:.0f}x) "
        f"{'MET' if speed >= TARGET_SPEEDUP else 'NOT MET'}; GA {ga:.4f} (target >= {TARGET_GA}) "
        f"{'MET' if ga >= TARGET_GA else 'NOT MET'}; stored {rate['stored'] / rate['drain3']:.1f}x Drain3"
    )
    c_e2e, c_d = float(np.median(cpu["e2e"])), float(np.median(cpu["drain3"]))
    print(
        f"cpu time: ei.cluster end to end {c_e2e:.2f} s (both cores), drain3 {c_d:.2f} s (one core): "
        f"{c_d / c_e2e:.2f}x in CPU (a machine shared with other work slows wall times unevenly)"
    )
    opened, clustered = peak_rss(plain)
    print(
        f"peak RSS of a fresh process: {clustered:,.0f} MB to open the bundle and cluster it "
        f"({opened:,.0f} MB to open it and read its frames)"
    )
    return speed >= TARGET_SPEEDUP and ga >= TARGET_GA


# VmHWM, not getrusage: Linux keeps ru_maxrss across fork + exec, so a child of this big process would
# report this process's peak
_RSS = """
import sys
import edgeinvestigate as ei
ev = ei.Evidence.open(sys.argv[1])
if sys.argv[2] == "cluster":
    ei.cluster(ev, stored=False)
else:
    ev.invocations, ev.logs, ev.exceptions, ev.dlq
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def peak_rss(path: Path) -> tuple[float, float]:
    """Peak RSS in MB of a fresh process that opens the bundle and reads its frames, and of one that
    also clusters it (``stored=False``)."""
    out = []
    for what in ("read", "cluster"):
        done = subprocess.run(
            [sys.executable, "-c", _RSS, str(path), what], capture_output=True, text=True, check=True
        )
        out.append(int(done.stdout.split()[-1]) / 1024)
    return out[0], out[1]


if __name__ == "__main__":
    sys.exit(main())
