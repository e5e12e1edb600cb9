"""Cluster rules: merge and split rules applied by cluster(), and rules files that are wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

import edgeinvestigate as ei
from edgeinvestigate.analysis.rules import ClusterRules
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.evidence.bundle import Evidence


def test_rules_merge_and_split(small_evidence: Evidence, tmp_path: Path) -> None:
    base = ei.cluster(small_evidence)
    typeerr, upstream = (
        base.table[base.table["template"].str.startswith(p)]["cluster_id"].iloc[0]
        for p in ("TypeError", "Upstream")
    )
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'[[split]]\nname = "late"\ncluster = "{typeerr}"\npattern = "worker.js"\n\n'
        f'[[merge]]\nname = "everything"\nclusters = ["{upstream}"]\ntemplates = ["TypeError*"]\n'
        f'into = "{upstream}"\n\n[[merge]]\nname = "nothing"\nclusters = ["c000000000000"]\n'
    )
    cl = ei.cluster(small_evidence, rules=rules)
    assert list(cl.table["cluster_id"]) == [upstream]
    assert cl.table["count"].iloc[0] == 20
    assert "merge rule 'everything'" in cl.explain(0).rule
    assert cl.rules is not None
    assert cl.rules.unused() == ["split[0]", "merge[1]"]


def test_split_rule_moves_matching_messages(small_evidence: Evidence) -> None:
    base = ei.cluster(small_evidence)
    upstream = base.table[base.table["template"].str.startswith("Upstream")]["cluster_id"].iloc[0]
    rules = ClusterRules.model_validate(
        {"split": [{"name": "item-12", "cluster": upstream, "pattern": "items/12abc"}]}
    )
    cl = ei.cluster(small_evidence, rules=rules)
    parts = cl.table[cl.table["template"].str.startswith("Upstream")]
    assert len(parts) == 2
    assert parts["template"].str.endswith("[item-12]").sum() == 1
    assert sorted(parts["count"]) == [1, 4]


@pytest.mark.parametrize(
    ("content", "suffix", "match"),
    [
        ("[[merge]]\nname = 'x'\n", ".toml", r"rules\.toml: rule merge\[0\].*clusters"),
        ("[[split]]\nname = 'x'\ncluster = 'c1'\npattern = '('\n", ".toml", r"split\[0\] field pattern"),
        ("[[merge]\n", ".toml", r"not valid TOML"),
        (
            '{"merge": [{"name": "x", "clusters": ["c1"], "colour": 1}]}',
            ".json",
            r"rules\.json: rule merge\[0\] field colour",
        ),
        ("[1, 2]", ".json", "expected a table"),
    ],
)
def test_bad_rules_files_name_the_file_and_rule(
    tmp_path: Path, content: str, suffix: str, match: str
) -> None:
    path = tmp_path / f"rules{suffix}"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        ClusterRules.load(path)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the cluster rules file"):
        ei.cluster(Evidence.empty(), rules=tmp_path / "nope.toml")
