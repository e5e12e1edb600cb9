"""The Logpush corpora of the load benchmark, generated once into ``bench-data/``.

``usual``: the records of ``logpush_gen.py``; ``unusual``: every documented shape
(``tests/sources/logpush_shapes.py``). Each is written as ten gzip files (``many``), and the same
records concatenated into one gzip file (``one``), so both layouts hold the same records.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Final

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "sources"))

#: corpus name -> (shape, layout)
CORPORA: Final = {
    "usual-one": ("usual", "one"),
    "usual-many": ("usual", "many"),
    "unusual-one": ("unusual", "one"),
    "unusual-many": ("unusual", "many"),
}
MANY_FILES: Final = 10


def _generate(shape: str, out: Path, records: int) -> list[Path]:
    if shape == "usual":
        from logpush_gen import generate

        return generate(out, records, files=MANY_FILES)
    from logpush_shapes import write_corpus

    return write_corpus(out, records, files=MANY_FILES)


def _one_file(many: Path, out: Path) -> list[Path]:
    """The records of ``many`` (gzip NDJSON files) concatenated into one gzip file under ``out``."""
    from isal import igzip

    files = sorted(many.rglob("*.gz"))
    day = out / files[0].parent.name
    day.mkdir(parents=True, exist_ok=True)
    path = day / "20261127T120000Z_20261127T235959Z_00000000.log.gz"
    text = b"".join(igzip.decompress(p.read_bytes()) for p in files)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(igzip.compress(text, compresslevel=2))
    tmp.rename(path)
    return [path]


def ensure_corpus(name: str, records: int) -> tuple[Path, dict[str, int]]:
    """The folder of corpus ``name`` with ``records`` records (generated once) and its sizes:
    ``records``, ``files``, ``gzip_bytes``, ``ndjson_bytes``."""
    shape, layout = CORPORA[name]
    base = ROOT / "bench-data"
    data = base / f"logpush-{records}-{name}"
    marker = base / f"logpush-{records}-{name}.json"
    if marker.is_file():
        return data, json.loads(marker.read_text())
    if data.exists():
        shutil.rmtree(data)  # a half-written corpus
    t0 = time.perf_counter()
    if layout == "many":
        print(f"generating {records:,} {shape} Logpush records into {data} (once) ...", flush=True)
        paths = _generate(shape, data, records)
    else:
        many, _ = ensure_corpus(f"{shape}-many", records)
        print(f"concatenating {many.name} into one file {data} (once) ...", flush=True)
        paths = _one_file(many, data)
    from isal import igzip

    meta = {
        "records": records,
        "files": len(paths),
        "gzip_bytes": sum(p.stat().st_size for p in paths),
        "ndjson_bytes": sum(len(igzip.decompress(p.read_bytes())) for p in paths),
    }
    marker.write_text(json.dumps(meta))
    print(
        f"  done in {time.perf_counter() - t0:.0f} s: {len(paths)} files, "
        f"{meta['gzip_bytes'] / 1e6:.0f} MB gzip"
    )
    return data, meta
