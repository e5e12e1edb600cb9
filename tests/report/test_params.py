"""Notebook parameters are checked before any cell runs; secrets are never parameters."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

import edgeinvestigate.report.runner as nbmod
from edgeinvestigate.cli._report import parse_parameters
from edgeinvestigate.errors import ConfigError, NotebookError
from edgeinvestigate.report.params import (
    PARAMETER_MODELS,
    NotebookParameters,
    is_secret_name,
    validate_parameters,
)


@pytest.fixture
def no_execution(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail the test if papermill is ever asked to run a notebook."""
    import papermill

    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("papermill.execute_notebook was called")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)
    return calls


def test_every_notebook_has_a_model_and_a_parameters_cell() -> None:
    assert set(PARAMETER_MODELS) == set(nbmod.NOTEBOOKS)
    for name, model in PARAMETER_MODELS.items():
        nb = jupytext.read(nbmod.notebook_path(name))
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{name}: exactly one parameters cell"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} has outputs"
        # the names assigned in the parameters cell are exactly the model's fields
        assigned = {
            line.split("=", 1)[0].split(":", 1)[0].strip()
            for line in tagged[0].source.splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        }
        assert assigned == set(model.model_fields), name


def test_defaults_validate() -> None:
    for name in PARAMETER_MODELS:
        assert isinstance(validate_parameters(name, {}), NotebookParameters)


@pytest.mark.parametrize(
    "name", ["token", "api_token", "apiKey", "CLOUDFLARE_API_TOKEN", "password", "auth_header"]
)
def test_secret_names_are_recognised(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["bundle", "top_n", "cluster_id", "to_queue", "incident_id", "replay_plan", "monkey"]
)
def test_ordinary_names_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


def test_no_model_declares_a_secret() -> None:
    for model in PARAMETER_MODELS.values():
        assert not [f for f in model.model_fields if is_secret_name(f)]
    with pytest.raises(TypeError, match="looks like a secret"):

        class Bad(NotebookParameters):
            api_token: str = ""


def test_unknown_parameter_lists_valid_ones(no_execution: list[object], tmp_path: Path) -> None:
    with pytest.raises(NotebookError) as info:
        nbmod.run_notebook("triage", tmp_path / "out", {"topn": 3})
    msg = info.value.message
    assert "unknown parameter 'topn'" in msg
    for valid in ("bundle (str)", "top_n (int)", "since (str)", "recent_errors (int)"):
        assert valid in msg
    assert no_execution == []
    assert not (tmp_path / "out").exists()


def test_ill_typed_parameter_is_refused(no_execution: list[object], tmp_path: Path) -> None:
    with pytest.raises(NotebookError) as info:
        nbmod.run_notebook("root-cause", tmp_path, {"top_n": "five"})
    assert "top_n" in info.value.message
    assert "integer" in info.value.message
    with pytest.raises(NotebookError, match="since"):
        nbmod.run_notebook("triage", tmp_path, {"since": "yesterday-ish"})
    with pytest.raises(NotebookError, match="execute"):
        nbmod.run_notebook("dlq-replay", tmp_path, {"execute": "perhaps"})
    assert no_execution == []
    assert list(tmp_path.iterdir()) == []


def test_secret_parameter_refused_without_echoing_it(no_execution: list[object], tmp_path: Path) -> None:
    value = "Zx9-not-a-real-token-but-looks-like-one-42"
    with pytest.raises(NotebookError) as info:
        nbmod.run_notebook("dlq-replay", tmp_path, {"api_token": value})
    assert "secret" in info.value.message
    assert "CLOUDFLARE_API_TOKEN" in info.value.hint
    assert value not in str(info.value)
    # an ill-typed value is not echoed either
    with pytest.raises(NotebookError) as info2:
        nbmod.run_notebook("triage", tmp_path, {"top_n": value})
    assert value not in str(info2.value)
    assert no_execution == []


def test_cli_strings_are_coerced() -> None:
    params = validate_parameters(
        "dlq-replay",
        parse_parameters(("clusters=c1, c2", "execute=true", "rate=12.5", 'job_types=["EMAIL_DELIVERY"]')),
    )
    assert params.model_dump()["clusters"] == ["c1", "c2"]
    assert params.model_dump()["job_types"] == ["EMAIL_DELIVERY"]
    assert params.model_dump()["execute"] is True
    assert params.model_dump()["rate"] == 12.5


def test_parse_parameters_errors() -> None:
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_parameters(("top_n",))
    with pytest.raises(ConfigError, match="twice"):
        parse_parameters(("top_n=1", "top_n=2"))
    assert parse_parameters(("title=a=b",)) == {"title": "a=b"}


def test_write_report_refuses_bundle_parameter_and_non_bundle(
    no_execution: list[object], tmp_path: Path
) -> None:
    with pytest.raises(NotebookError, match="BUNDLE argument"):
        nbmod.write_report(tmp_path, tmp_path / "out", parameters={"bundle": "x"})
    with pytest.raises(NotebookError, match="not an evidence bundle"):
        nbmod.write_report(tmp_path, tmp_path / "out")
    with pytest.raises(NotebookError, match="unknown notebook"):
        nbmod.write_report(tmp_path, tmp_path / "out", notebook="nope")
    assert no_execution == []


def test_papermill_sees_every_declared_parameter() -> None:
    """papermill parses each parameters line (a comment containing '=' makes it skip the line)."""
    from papermill.translators import PythonTranslator

    for name, model in PARAMETER_MODELS.items():
        nb = jupytext.read(nbmod.notebook_path(name))
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        seen = {p.name for p in PythonTranslator.inspect(cell)}
        assert seen == set(model.model_fields), name


def test_notebooks_ship_in_the_wheel() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["notebooks"] == f"edgeinvestigate/{nbmod._PACKAGED}"
    assert {p.stem for p in (root / "notebooks").glob("*.py")} == set(nbmod.NOTEBOOKS)


def test_notebooks_list_cli(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from edgeinvestigate.cli._main import main

    assert main(["notebooks", "list", "--json"]) in (None, 0)
    listed = json.loads(capsys.readouterr().out)
    assert [nb["name"] for nb in listed] == list(nbmod.NOTEBOOKS)
    triage = listed[0]
    assert {k: triage["parameters"][3][k] for k in ("name", "type", "default")} == {
        "name": "top_n",
        "type": "int",
        "default": 10,
    }
    assert Path(triage["path"]).is_file()
    assert main(["notebooks", "list"]) in (None, 0)
    text = capsys.readouterr().out
    assert "-p top_n=10  (int)" in text
    assert main(["notebooks", "path", "root-cause"]) in (None, 0)
    assert capsys.readouterr().out.strip().endswith("root-cause.py")
