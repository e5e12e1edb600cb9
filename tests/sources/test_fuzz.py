"""Fuzzing every loader (issue 14): real records mutated as a hostile or damaged file would have them
(wrong types, nesting 1,000 to 100,000 deep, numbers past 64 bits and past a float, invalid UTF-8,
NULs, strings past the record cap, junk lines, files cut at any byte, gzip cut short). No exception but
a ParseError naming the file escapes, and every record is loaded or reported as skipped: see
``fuzz_records.check_case``. A small run here; ``benchmarks/fuzz_loaders.py`` runs 10,000+ cases per
loader (counts in the README)."""

from __future__ import annotations

import pytest
from fuzz_records import LOADERS, cases, check_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize("loader", LOADERS)
@settings(
    max_examples=30,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # tmp_path: each example overwrites its one file
        HealthCheck.data_too_large,  # files of records are big draws by design
        HealthCheck.large_base_example,
        HealthCheck.too_slow,
    ],
)
@given(data=st.data())
def test_fuzzed_files_never_crash_and_every_record_is_accounted_for(tmp_path, loader, data):
    case = data.draw(cases(loader))
    outcome = check_case(case, tmp_path / ("fuzz.json.gz" if case.gzip else "fuzz.json"))
    assert outcome.loaded + outcome.skipped <= outcome.records + 1 or outcome.refused
