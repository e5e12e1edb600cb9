"""--since/--until values that are not a usable time are a ConfigError naming the option and the value
(never a traceback, never a silent NaT window)."""

from __future__ import annotations

import pytest

from edgeinvestigate._time import parse_time
from edgeinvestigate.cli import main
from edgeinvestigate.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("-999999999h", "out of range"),
        ("-99999999999d", "out of range"),
        ("9999-01-01T00:00Z", "out of range"),
        ("nan", "not a point in time"),
        ("NaT", "not a point in time"),
        (" ", "not a point in time"),
        ("yesterday-ish", "not a recognised time"),
    ],
)
def test_bad_times_are_config_errors(value, why):
    with pytest.raises(ConfigError) as info:
        parse_time(value, name="--since")
    assert f"cannot read --since {value!r} as a time: it is {why}" in str(info.value)


def test_good_times_still_parse():
    assert parse_time("2026-11-27T14:00Z", name="--since").isoformat() == "2026-11-27T14:00:00+00:00"
    assert parse_time("1795788000181").isoformat() == "2026-11-27T14:00:00.181000+00:00"
    assert parse_time("") is None
    assert parse_time(None) is None
    assert parse_time("-2h") < parse_time("now")


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("value", ["-999999999h", "nan", " "])
def test_collect_reports_the_option(tmp_path, data_dir, capsys, option, value):
    out = tmp_path / "b"
    with pytest.raises(SystemExit) as info:
        main(["collect", "--tail", str(data_dir / "tail/tail.ndjson"), option, value, "--out", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read {option} {value!r} as a time")
    assert "Traceback" not in err
    assert not out.exists()
