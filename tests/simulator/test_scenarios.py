"""Scenario files: the shipped ones validate, bad ones fail with a message naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeinvestigate.errors import ConfigError
from edgeinvestigate.simulator import list_scenarios, load_scenario, simulate

SHIPPED = {"default", "bad-deploy", "dependency-outage", "poison-payload", "cpu-limits"}


def test_shipped_scenarios_are_listed_with_descriptions() -> None:
    scenarios = list_scenarios()
    assert set(scenarios) >= SHIPPED | {"logpush-benchmark"}
    bench = load_scenario("logpush-benchmark")
    assert bench.invocations == 1_000_000
    assert bench.uncaught_rate > 0.1
    assert all(len(d) > 40 and "\n" not in d for d in scenarios.values())


def test_default_combines_bad_deploy_and_outage() -> None:
    default = load_scenario("default")
    kinds = {i.kind for i in default.incidents}
    assert kinds == {"bad_deploy", "dependency_outage"}
    assert default.noise > 0
    for name in SHIPPED:
        sc = load_scenario(name)
        assert sc.name == name
        for inc in sc.incidents:
            a, b = sc.incident_window(inc)
            assert sc.start_ms <= a < b


def test_outage_lasts_twenty_minutes() -> None:
    sc = load_scenario("dependency-outage")
    (inc,) = sc.incidents
    a, b = sc.incident_window(inc)
    assert b - a == 20 * 60_000
    assert inc.job_type == "IMAGE_PROCESSING"
    assert inc.is_transient


BASE = """
name = "mine"
description = "a custom scenario used by the tests"
invocations = 200

[[deployments]]
tag = "v1"
at = "-1d"
"""


def test_a_custom_toml_file_runs(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        BASE
        + """
[[incidents]]
id = "hooks-down"
kind = "dependency_outage"
job_type = "WEBHOOK_PROCESSING"
start = "+10m"
end = "+30m"
rate = 1.0
description = "every webhook endpoint is down"

[[incidents.errors]]
template = "connect ECONNREFUSED {ip4}:{port}"
"""
    )
    summary = simulate(path, tmp_path / "out", seed=3)
    assert summary.scenario == "mine"
    assert summary.root_causes == ["hooks-down"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ('[[incidents]]\nid = "x"\nkind = "meteor"\njob_type = "DATA_SYNC"\nrate = 0.1\n'
         'description = "d"\nerrors = [{template = "boom"}]\n', "incidents.0.kind"),
        ('[[incidents]]\nid = "x"\nkind = "bad_deploy"\njob_type = "DATA_SYNC"\nrate = 0.1\n'
         'deployment = "v9"\ndescription = "d"\nerrors = [{template = "boom"}]\n', "v9"),
        ('[[incidents]]\nid = "x"\nkind = "dependency_outage"\njob_type = "DATA_SYNC"\nrate = 0.1\n'
         'start = "+1m"\nend = "+2m"\ndescription = "d"\nerrors = [{template = "boom {nokind}"}]\n',
         "nokind"),
        ('[[incidents]]\nid = "x"\nkind = "dependency_outage"\njob_type = "DATA_SYNC"\nrate = 0.1\n'
         'start = "soon"\nend = "+2m"\ndescription = "d"\nerrors = [{template = "boom"}]\n', "soon"),
        ("bogus_key = 1\n", "bogus_key"),
    ],
)  # fmt: skip
def test_invalid_scenarios_name_the_file_and_the_field(tmp_path: Path, extra: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BASE + extra)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert str(path) in err.value.message
    assert needle in err.value.message


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML"):
        load_scenario(path)


def test_unknown_scenario_lists_the_shipped_ones() -> None:
    with pytest.raises(ConfigError) as err:
        load_scenario("nope")
    assert "bad-deploy" in err.value.message
    assert err.value.hint == "edgeinvestigate simulate --list"


def test_refuses_to_clobber_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        simulate("default", tmp_path, invocations=100)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_size_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"either --invocations or --scale"):
        simulate("default", tmp_path / "a", invocations=100, scale=2)
    with pytest.raises(ConfigError, match="unknown formats"):
        simulate("default", tmp_path / "b", formats=["csv"])
    s = simulate("bad-deploy", tmp_path / "c", scale=0.2, formats=["dlq"])
    assert 450 <= s.invocations <= 750  # about 0.2 x 3000
    s = simulate("bad-deploy", tmp_path / "d", invocations=1000, formats=["dlq"])
    assert 850 <= s.invocations <= 1150


def test_start_moves_the_window(tmp_path: Path) -> None:
    import json

    s = simulate("bad-deploy", tmp_path / "a", invocations=200, formats=["dlq"], start="2027-01-05T09:00Z")
    truth = json.loads(s.ground_truth.read_text())
    assert truth["window"]["start"] == "2027-01-05T09:00:00.000Z"
    (rc,) = truth["root_causes"]
    assert rc["start"] == "2027-01-05T09:45:00.000Z"  # the deploy at +45m moved with it
    with pytest.raises(ConfigError, match="--start"):
        simulate("bad-deploy", tmp_path / "b", invocations=200, start="tomorrowish")
