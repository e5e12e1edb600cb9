"""Every shell command in the runbooks and the README is real, and every runbook runs on the sandbox.

Extracts the fenced shell blocks of ``runbooks/*.md`` and ``README.md``, finds each
``edgeinvestigate`` invocation (also inside ``$(...)``, after ``&&``/``;``/``|``, across ``\\``
continuations) and checks against click's command tree that every subcommand and every option
exists. Then checks the other direction: every CLI command and every notebook is referenced from a
runbook or the README, so nothing the tool can do is undocumented at 3 a.m.

Each runbook ends with "Practise it on the sandbox": shell blocks fenced as ```` ```sh sandbox ````.
They are RUN, one bash shell per runbook (``set -euo pipefail``), against a fresh sandbox process,
after the practice shell set-up of ``runbooks/README.md`` (the ```` ```sh sandbox-setup ```` block), so
the whole loop of every runbook (simulate, collect, analyse, report, roll back, replay, consume,
verify) works as written. The practice must use every command its runbook shows.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from edgeinvestigate.cli._main import cli
from edgeinvestigate.report.runner import NOTEBOOKS
from edgeinvestigate.sandbox.testing import RunningSandbox
from edgeinvestigate.simulator._scenario import DEFAULT_ACCOUNT_ID as SIMULATOR_ACCOUNT_ID

ROOT = Path(__file__).resolve().parents[1]
DOCS = [*sorted((ROOT / "runbooks").glob("*.md")), ROOT / "README.md"]
RUNBOOKS = [p for p in sorted((ROOT / "runbooks").glob("*.md")) if p.name != "README.md"]
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh", ""}
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)(?P<info>[^\n]*)$")
PRACTICE = "sandbox"  # ```sh sandbox: run by test_runbook_practice_runs_on_the_sandbox
PRACTICE_SETUP = "sandbox-setup"  # ```sh sandbox-setup (runbooks/README.md): run before every practice


@dataclass(frozen=True)
class Invocation:
    doc: str
    line: int
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {shlex.join(self.argv)}"


def _blocks(path: Path, tag: str | None = None) -> list[tuple[int, str]]:
    """(first line number, text) of each fenced shell block (only those tagged ``tag``, if given)."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m["fence"], m["lang"].lower()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if lang in SHELL_LANGS and (tag is None or tag in m["info"].split()):
            blocks.append((start + 1, "\n".join(lines[start:j])))
        i = j + 1
    return blocks


def _segments(command: str) -> list[str]:
    """Split a shell line into simple commands: ``$(...)``, ``&&``, ``||``, ``;``, ``|``."""
    inner = re.findall(r"\$\(([^()]*)\)", command)
    outer = re.sub(r"\$\([^()]*\)", "SUBST", command)
    return [p.strip() for p in _split_unquoted(outer) + inner if p.strip()]


def _split_unquoted(command: str) -> list[str]:
    """Split on ``&&``, ``||``, ``;`` and ``|`` outside quotes (a jq filter may hold a ``|``)."""
    parts, buf, quote, i = [], "", "", 0
    while i < len(command):
        ch = command[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif command.startswith(("&&", "||"), i):
            parts.append(buf)
            buf, i = "", i + 2
            continue
        elif ch in ";|":
            parts.append(buf)
            buf, i = "", i + 1
            continue
        buf += ch
        i += 1
    return [*parts, buf]


def _invocations_in(doc: Path, blocks: list[tuple[int, str]]) -> list[Invocation]:
    found = []
    for first, text in blocks:
        logical: list[tuple[int, str]] = []
        buf, buf_line = "", first
        for offset, raw in enumerate(text.splitlines()):
            line = raw.rstrip()
            if line.startswith(("$ ", "% ")):
                line = line[2:]
            if not buf:
                buf_line = first + offset
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            logical.append((buf_line, buf))
            buf = ""
        for lineno, cmd in logical:
            for seg in _segments(cmd):
                try:
                    words = shlex.split(seg, comments=True)
                except ValueError as exc:  # unbalanced quotes
                    raise AssertionError(f"{doc.name}:{lineno}: cannot parse {seg!r}: {exc}") from None
                # skip env assignments like FOO=1 edgeinvestigate ...
                while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                    words = words[1:]
                if words and words[0] == "edgeinvestigate":
                    found.append(Invocation(doc.relative_to(ROOT).as_posix(), lineno, tuple(words[1:])))
    return found


def invocations() -> list[Invocation]:
    found = []
    for doc in DOCS:
        if doc.is_file():
            found.extend(_invocations_in(doc, _blocks(doc)))
    return found


INVOCATIONS = invocations()


def _option_names(command: click.Command) -> dict[str, click.Option]:
    names: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in [*param.opts, *param.secondary_opts]:
                names[name] = param
    names.setdefault("--help", click.Option(["--help"], is_flag=True))
    names.setdefault("-h", click.Option(["-h"], is_flag=True))
    return names


def resolve(argv: tuple[str, ...]) -> tuple[list[str], click.Command, list[str]]:
    """Walk the command tree; return (command path, leaf command, remaining words)."""
    ctx = click.Context(cli)
    command: click.Command = cli
    path: list[str] = []
    words = list(argv)
    while isinstance(command, click.Group):
        # options of the group itself (e.g. edgeinvestigate -v report ...)
        opts = _option_names(command)
        while words and words[0].startswith("-"):
            word = words.pop(0)
            name = word.split("=", 1)[0]
            assert name in opts, f"unknown option {name} for 'edgeinvestigate {' '.join(path)}'"
            if not opts[name].is_flag and not opts[name].count and "=" not in word and words:
                words.pop(0)
        if not words:
            break
        sub = command.get_command(ctx, words[0])
        assert sub is not None, (
            f"'edgeinvestigate {' '.join([*path, words[0]])}' is not a command "
            f"(have: {', '.join(command.list_commands(ctx))})"
        )
        path.append(words.pop(0))
        command = sub
        ctx = click.Context(command, parent=ctx, info_name=path[-1])
    return path, command, words


def check_options(command: click.Command, words: list[str], where: str) -> None:
    opts = _option_names(command)
    for word in words:
        if word == "--" or not word.startswith("-") or re.fullmatch(r"-\d+[smhd]?", word):
            continue  # an argument, or a relative time like -6h given as an option value
        name = word.split("=", 1)[0]
        if name in opts:
            continue
        if re.fullmatch(r"-[A-Za-z]{2,}", name) and all(f"-{c}" in opts for c in name[1:]):
            continue  # bundled short flags
        if re.fullmatch(r"-[A-Za-z].+", name) and name[:2] in opts:
            continue  # short option with attached value, e.g. -pname=value
        raise AssertionError(f"{where}: unknown option {name} (valid: {', '.join(sorted(opts))})")


def test_docs_have_commands() -> None:
    docs = {inv.doc for inv in INVOCATIONS}
    assert "runbooks/README.md" in docs
    assert len(INVOCATIONS) >= 30, [str(i) for i in INVOCATIONS]


@pytest.mark.parametrize("inv", INVOCATIONS, ids=str)
def test_command_exists(inv: Invocation) -> None:
    _path, command, rest = resolve(inv.argv)
    check_options(command, rest, str(inv))


def _leaf_commands() -> list[str]:
    out: list[str] = []

    def walk(group: click.Group, prefix: list[str], ctx: click.Context) -> None:
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if sub is None:
                continue
            if isinstance(sub, click.Group):
                walk(sub, [*prefix, name], click.Context(sub, parent=ctx, info_name=name))
            else:
                out.append(" ".join([*prefix, name]))

    walk(cli, [], click.Context(cli))
    return out


def test_every_command_is_documented() -> None:
    documented = set()
    for inv in INVOCATIONS:
        try:
            path, _, _ = resolve(inv.argv)
        except AssertionError:
            continue  # reported by test_command_exists
        documented.add(" ".join(path))
    missing = [c for c in _leaf_commands() if c not in documented]
    assert not missing, f"commands no runbook or README shows: {missing}"


@pytest.mark.parametrize("notebook", list(NOTEBOOKS))
def test_every_notebook_is_documented(notebook: str) -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS if p.is_file())
    assert f"`{notebook}`" in text or f"--notebook {notebook}" in text, notebook
    # and runnable as documented
    used = [inv for inv in INVOCATIONS if "--notebook" in inv.argv or "-n" in inv.argv]
    assert used, "no runbook shows how to run a notebook"


def test_runbooks_link_to_existing_files() -> None:
    for doc in DOCS:
        if not doc.is_file():
            continue
        for target in re.findall(r"\]\(([\w./-]+\.md)(?:#[\w-]+)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).is_file(), f"{doc.name} links to missing {target}"


def test_runbook_index_covers_every_runbook() -> None:
    index = (ROOT / "runbooks" / "README.md").read_text(encoding="utf-8")
    for page in (ROOT / "runbooks").glob("*.md"):
        if page.name != "README.md":
            assert f"({page.name})" in index, f"runbooks/README.md does not link {page.name}"


def test_extractor_handles_continuations_and_substitutions() -> None:
    """The extractor itself: continuation lines, $(...), pipes and comments."""
    sample = (
        'edgeinvestigate a --x 1 \\\n  --y 2 | jq .  # note\njupyter lab "$(edgeinvestigate notebooks path)"'
    )
    cmds = []
    buf = ""
    for line in sample.splitlines():
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        cmds.append(buf + line)
        buf = ""
    segs = [s for c in cmds for s in _segments(c)]
    words = [shlex.split(s, comments=True) for s in segs]
    assert ["edgeinvestigate", "a", "--x", "1", "--y", "2"] in words
    assert ["edgeinvestigate", "notebooks", "path"] in words


def test_segments_split_outside_quotes_only() -> None:
    line = (
        "edgeinvestigate clusters B --format json | jq '.c[] | select(.n > 0)' && edgeinvestigate analyze B"
    )
    assert _segments(line) == [
        "edgeinvestigate clusters B --format json",
        "jq '.c[] | select(.n > 0)'",
        "edgeinvestigate analyze B",
    ]
    assert _segments("export A=$(jq -r .x f.json); edgeinvestigate tail s") == [
        "export A=SUBST",
        "edgeinvestigate tail s",
        "jq -r .x f.json",
    ]


# ------------------------------------------------------------------ practice on the sandbox


def _command_paths(invs: list[Invocation]) -> set[str]:
    paths = set()
    for inv in invs:
        try:
            path, _, _ = resolve(inv.argv)
        except AssertionError:
            continue  # reported by test_command_exists
        if path:
            paths.add(" ".join(path))
    return paths


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda p: p.name)
def test_every_runbook_has_a_practice_that_uses_its_commands(runbook: Path) -> None:
    practice = _blocks(runbook, PRACTICE)
    assert practice, (
        f"{runbook.name} has no ```sh {PRACTICE} block (its 'Practise it on the sandbox' section)"
    )
    text = runbook.read_text(encoding="utf-8")
    assert "## Practise it on the sandbox" in text, runbook.name
    every = _command_paths(_invocations_in(runbook, _blocks(runbook)))
    practised = _command_paths(_invocations_in(runbook, practice))
    missing = sorted(every - practised - {"sandbox serve"})
    assert not missing, f"{runbook.name}: the practice does not run {missing}"


def _practice_setup() -> tuple[int, str]:
    (setup,) = _blocks(ROOT / "runbooks" / "README.md", PRACTICE_SETUP)
    return setup


def _practice_script(runbook: Path) -> tuple[str, list[str]]:
    """The bash script of a runbook's practice, and where each of its lines comes from."""
    prelude = [
        "set -euo pipefail",
        "trap 'echo \"practice failed at script line $LINENO\" >&2' ERR",
        # the CLI of the interpreter (and worktree) running the tests, whatever is on PATH
        'edgeinvestigate() { "$EDGEINVESTIGATE_PYTHON" -m edgeinvestigate "$@"; }',
    ]
    lines = list(prelude)
    origin = ["(test prelude)"] * len(prelude)
    setup_doc = (ROOT / "runbooks" / "README.md").relative_to(ROOT).as_posix()
    parts = [
        (setup_doc, _practice_setup()),
        *((runbook.relative_to(ROOT).as_posix(), b) for b in _blocks(runbook, PRACTICE)),
    ]
    for doc, (first, text) in parts:
        for offset, line in enumerate(text.splitlines()):
            lines.append(line)
            origin.append(f"{doc}:{first + offset}")
    return "\n".join(lines) + "\n", origin


def test_practice_setup_is_in_the_runbook_index() -> None:
    first, text = _practice_setup()
    assert "SANDBOX=${SANDBOX:-http://127.0.0.1:8789}" in text  # the test's sandbox wins over the default
    assert "cfapi()" in text
    assert "CLOUDFLARE_API_TOKEN" in text
    assert first > 1


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda p: p.name)
def test_runbook_practice_runs_on_the_sandbox(runbook: Path, tmp_path: Path) -> None:
    from edgeinvestigate.sandbox.testing import running_sandbox

    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the runbook practice needs {', '.join(missing)} on PATH")
    script, origin = _practice_script(runbook)
    work = tmp_path / "practice"
    work.mkdir()
    (work / "practice.sh").write_text(script)
    token = "practice-token-" + runbook.stem
    with running_sandbox(tmp_path / "sandbox", token=token) as sb:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
        env |= {
            "EDGEINVESTIGATE_PYTHON": sys.executable,
            "EDGEINVESTIGATE_SANDBOX_TOKEN": token,
            "SANDBOX": sb.base,
            "EDGEINVESTIGATE_REPLAY_LOCK_DIR": str(tmp_path / "replay-locks"),  # this test's runs only
        }
        env.pop("EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES", None)  # the practice names its own allow-list
        proc = subprocess.run(
            ["bash", str(work / "practice.sh")],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if proc.returncode != 0:
        where = re.findall(r"practice failed at script line (\d+)", proc.stderr)
        at = origin[int(where[-1]) - 1] if where else "?"
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).splitlines()[-60:])
        raise AssertionError(
            f"the practice of {runbook.name} failed at {at} (exit {proc.returncode}):\n{tail}"
        )
    assert token not in proc.stdout + proc.stderr  # the token never shows


BUNDLE_SECTION = "## The evidence bundle (the engine's store)"


def _python_blocks(section: str) -> list[tuple[int, str]]:
    """(line, code) of the python blocks of one README section."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(section)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    blocks, i = [], start
    while i < end:
        if lines[i].strip() == "```python":
            j = lines.index("```", i + 1)
            blocks.append((i + 2, "\n".join(lines[i + 1 : j])))
            i = j
        i += 1
    return blocks


def test_the_bundle_layout_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The README's bundle-layout contract, as its examples use it: DuckDB on the files as they are,
    and ev.sql / ev.rel, on a bundle with its clusters stored (the sample incident)."""
    import shutil

    from edgeinvestigate.report.sample import sample_bundle, sample_dir

    sample_bundle()  # built (and its clusters stored) on first use
    shutil.copytree(sample_dir() / "bundle", tmp_path / "evidence" / "INC-123")
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks(BUNDLE_SECTION)
    assert len(blocks) == 2
    assert "read_parquet" in blocks[0][1]
    for line, code in blocks:
        namespace: dict[str, object] = {}
        exec(compile(code, f"README.md:{line}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "errors" in out
    assert "invocations" in out
    assert namespace["clusters"].origin == "stored"  # type: ignore[attr-defined]
    assert len(namespace["top"]) == 5  # type: ignore[arg-type]


def test_the_documented_account_id_is_the_simulators(incident_sandbox: tuple[RunningSandbox, Path]) -> None:
    _, incident = incident_sandbox
    assert json.loads((incident / "ground_truth.json").read_text())["account_id"] == SIMULATOR_ACCOUNT_ID
    for doc in ("README.md", "runbooks/README.md"):
        text = (ROOT / doc).read_text()
        assert SIMULATOR_ACCOUNT_ID in text, doc
        assert "--start -2h" in text, doc
