"""Run the investigation notebooks with papermill and turn them into incident reports.

The notebooks live in ``notebooks/`` as jupytext ``py:percent`` text (reviewable, no outputs) and
ship inside the wheel. :func:`run_notebook` runs one of them:

1. the parameters are checked against the notebook's pydantic model (``_nbparams``): an unknown
   name, a wrong type or a secret-looking name is refused before any cell runs;
2. the text is read with jupytext, given the ``python3`` kernelspec (papermill cannot open
   ``py:percent`` by path, papermill issue 365) and executed by papermill with a progress bar;
3. every output is redacted (``_redact``; ``redact=False`` keeps PII but never secrets from the
   environment), the executed ``.ipynb`` is written, then a self-contained HTML (``_htmlreport``),
   then ``findings.json`` from what the notebook emitted.

A failed run still writes the notebook and the HTML, with a banner naming the failing cell and
the error; the result's ``ok`` is false and :meth:`NotebookRun.raise_for_error` raises.

>>> from edgeinvestigate.report.runner import write_report
>>> run = write_report("evidence/INC-123", "reports/INC-123")     # doctest: +SKIP
>>> run.html                                                       # doctest: +SKIP
PosixPath('reports/INC-123/incident-report.html')
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeinvestigate.errors import BundleError, MissingExtraError, NotebookError, NotebookParameterError
from edgeinvestigate.report._kernel_logs import redacted_kernel_logs
from edgeinvestigate.report._preflight import check_against_bundle
from edgeinvestigate.report.kernel import (
    FINDINGS_MIMETYPE,
    HIDDEN_OUTPUT_TAG,
    RESULT_MIMETYPE,
)
from edgeinvestigate.report.params import (
    PARAMETER_MODELS,
    NotebookParameters,
    describe_parameters,
    resolve_path_parameters,
    validate_parameters,
)
from edgeinvestigate.report.redact import Redactor

__all__ = [
    "NOTEBOOKS",
    "PARAMETER_MODELS",
    "NotebookInfo",
    "NotebookRun",
    "describe_parameters",
    "list_notebooks",
    "notebook_path",
    "notebooks_dir",
    "run_notebook",
    "validate_parameters",
    "write_report",
]

# name -> (title, what it answers). The order is the order of an investigation.
NOTEBOOKS: dict[str, tuple[str, str]] = {
    "triage": (
        "Triage",
        "what is failing right now: failure rate by job type, DLQ size, top clusters, deploys",
    ),
    "error-clusters": (
        "Error clusters",
        "the cluster table and one cluster in depth: examples, stacks, timeline",
    ),
    "root-cause": ("Root cause", "ranked findings with evidence: deploy markers, before/after, blast radius"),
    "dlq-replay": (
        "DLQ replay",
        "select failed jobs, build and dry-run a replay plan; run it with -p execute=true",
    ),
    "incident-report": (
        "Incident report",
        "the postmortem evidence: impact, UTC timeline, findings, manifest",
    ),
}

_PACKAGED = "_notebooks"  # where the wheel carries notebooks/ (pyproject force-include)


@dataclasses.dataclass(frozen=True)
class NotebookInfo:
    """One notebook: its name, title, what it answers, where its text is, and its parameters."""

    name: str
    title: str
    summary: str
    path: Path
    parameters: list[tuple[str, str, str, str]]


@dataclasses.dataclass
class NotebookRun:
    """What :func:`run_notebook` wrote. ``ok`` is false when a cell failed (``error`` says which)."""

    notebook: str
    out_dir: Path
    ipynb: Path
    html: Path
    findings: Path | None
    ok: bool
    error: str | None = None
    failed_cell: int | None = None
    n_figures: int = 0
    redactions: int = 0
    results: dict[str, Any] = dataclasses.field(default_factory=dict)
    summary: Path | None = None

    def raise_for_error(self) -> None:
        """Raise :class:`NotebookError` if the run failed (after the files were written)."""
        if not self.ok:
            raise NotebookError(
                f"notebook {self.notebook!r} failed: {self.error}; the partial report is {self.html}",
                hint="open the HTML: the red banner names the failing cell; rerun with --show-code to see it",
            )


def notebooks_dir() -> Path:
    """The folder holding the notebooks: inside the installed package, else the source checkout."""
    packaged = Path(__file__).resolve().parents[1] / _PACKAGED
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "notebooks"
    if checkout.is_dir():
        return checkout
    raise NotebookError(
        f"the notebooks are neither in {packaged} nor in {checkout}",
        hint="reinstall edgeinvestigate (pip install 'edgeinvestigate[notebooks]')",
    )


def notebook_path(name: str) -> Path:
    """The ``py:percent`` file of notebook ``name`` (``triage``, ``incident-report``...)."""
    if name not in NOTEBOOKS:
        raise NotebookError(
            f"unknown notebook {name!r}; the notebooks are: {', '.join(NOTEBOOKS)}",
            hint="edgeinvestigate notebooks list",
        )
    path = notebooks_dir() / f"{name}.py"
    if not path.is_file():
        raise NotebookError(f"notebook file {path} is missing", hint="reinstall edgeinvestigate")
    return path


def list_notebooks() -> list[NotebookInfo]:
    """Every notebook with its parameters, in investigation order."""
    return [
        NotebookInfo(name, title, summary, notebooks_dir() / f"{name}.py", describe_parameters(name))
        for name, (title, summary) in NOTEBOOKS.items()
    ]


def _require_extra() -> None:
    try:
        import jupytext  # noqa: F401
        import nbconvert  # noqa: F401
        import papermill  # noqa: F401
        import plotly  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("notebooks", f"running notebooks ({exc.name} missing)") from None


def write_report(
    bundle: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    notebook: str = "incident-report",
    parameters: dict[str, Any] | None = None,
    redact: bool = True,
    show_code: bool = False,
    progress: bool = True,
) -> NotebookRun:
    """Run ``notebook`` on the evidence bundle ``bundle`` and write the report into ``out_dir``."""
    params = dict(parameters or {})
    if "bundle" in params:
        raise NotebookParameterError(
            "give the bundle as the BUNDLE argument, not as the parameter 'bundle'",
            hint="edgeinvestigate report BUNDLE --out DIR",
        )
    path = Path(bundle)
    validate_parameters(notebook, {**params, "bundle": str(path)})  # refuse bad parameters first
    if not path.is_dir() or not (path / "manifest.json").is_file():
        raise NotebookError(
            f"{path} is not an evidence bundle (a folder with manifest.json)",
            hint="edgeinvestigate collect ... --out DIR; see runbooks/collect-evidence-before-retention.md",
        )
    _check_manifest(path / "manifest.json")
    params["bundle"] = str(path.resolve())
    return run_notebook(notebook, out_dir, params, redact=redact, show_code=show_code, progress=progress)


def _check_manifest(mpath: Path) -> None:
    """Refuse an unreadable manifest before a kernel starts (not as a failed cell minutes later)."""
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(
            f"cannot read {mpath}: {exc}",
            hint="re-create the bundle with `edgeinvestigate collect ... --out DIR`",
        ) from exc
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise BundleError(
            f"{mpath} is not an evidence bundle manifest (no 'format' key)",
            hint="re-create the bundle with `edgeinvestigate collect ... --out DIR`",
        )


def run_notebook(
    notebook: str,
    out_dir: str | os.PathLike[str],
    parameters: dict[str, Any] | None = None,
    *,
    redact: bool = True,
    show_code: bool = False,
    progress: bool = True,
    timeout: int = 900,
) -> NotebookRun:
    """Execute ``notebook`` with ``parameters``; write ``<name>.ipynb``, ``<name>.html``, ``findings.json``.

    Raises :class:`NotebookError` before running anything when a parameter is unknown, ill-typed,
    looks like a secret, or names a path that does not exist. Relative paths in ``parameters``
    are resolved against the current directory (the kernel itself runs in ``out_dir``).
    A failing cell does not raise: the files are written with a banner and
    the returned :class:`NotebookRun` has ``ok=False``.
    """
    # relative paths are the caller's (the kernel runs in out_dir); a missing input is refused now
    params = resolve_path_parameters(validate_parameters(notebook, parameters))
    path = notebook_path(notebook)
    _require_extra()
    check_against_bundle(notebook, params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    with redacted_kernel_logs(Redactor(pii=redact, credentials=True)):
        nb, error, failed_cell = _execute(path, params, out, progress=progress, timeout=timeout)

    redactor = Redactor(pii=redact)
    nb, emitted = _postprocess(nb, redactor, notebook=notebook, source=path)
    banner = None
    if error is not None:
        banner = f"This report is INCOMPLETE: {error}. Everything after that cell did not run."
        _add_banner_cell(nb, banner)
    meta = (
        f"notebook {notebook} · run {started:%Y-%m-%d %H:%M:%S} UTC · "
        f"bundle {params.bundle or 'bundled sample incident'}"
        + ("" if redact else " · NOT REDACTED: contains personal data")
    )

    # a failed run never replaces a good report: it is written beside it as NOTEBOOK.failed.*
    stem = notebook if error is None else f"{notebook}.failed"
    ipynb = out / f"{stem}.ipynb"
    _write_text(ipynb, _dump_ipynb(nb))

    from edgeinvestigate.report._html import count_figure_divs, export_html

    page_title = str(emitted.pop("title", "") or "") or f"{notebook} · edgeinvestigate"
    page = export_html(
        nb, show_code=show_code, banner=banner, meta=redactor.text(meta), title=redactor.text(page_title)
    )
    html_path = out / f"{stem}.html"
    _write_text(html_path, page)
    n_figures = _count_figures(nb)
    drawn = count_figure_divs(page)
    if drawn < n_figures:
        raise NotebookError(
            f"{html_path} holds {drawn} of the notebook's {n_figures} figures (plotly.py issue 5365)",
            hint="report this as a bug; the executed notebook next to it has every figure",
        )

    findings_path: Path | None = None
    findings = emitted.pop("findings", None)
    if findings is not None:
        findings_path = out / ("findings.json" if error is None else "findings.failed.json")
        _write_text(findings_path, json.dumps(findings, indent=2, sort_keys=False, default=str) + "\n")
    summary_path: Path | None = None
    if findings is not None and error is None:
        summary_path = out / "summary.md"
        _write_text(summary_path, _summary(findings, params, html_path, redact=redact))
    if error is None:  # a good run supersedes the files of an earlier failed one
        for stale in (f"{notebook}.failed.html", f"{notebook}.failed.ipynb"):
            (out / stale).unlink(missing_ok=True)
    return NotebookRun(
        notebook=notebook,
        out_dir=out,
        ipynb=ipynb,
        html=html_path,
        findings=findings_path,
        ok=error is None,
        error=error,
        failed_cell=failed_cell,
        n_figures=n_figures,
        redactions=redactor.count,
        results=emitted,
        summary=summary_path,
    )


def _summary(findings: dict[str, Any], params: NotebookParameters, html_path: Path, *, redact: bool) -> str:
    """``summary.md``: the ticket-ready Markdown summary of the findings the notebook emitted."""
    from edgeinvestigate.models.findings import Findings
    from edgeinvestigate.report.summary import markdown_summary

    return markdown_summary(
        Findings.model_validate(findings),
        incident_id=str(getattr(params, "incident_id", "") or ""),
        title=str(getattr(params, "title", "") or "").replace("Incident report", ""),
        report=html_path.name,
        bundle=params.bundle or "bundled sample incident",
        redact=redact,
    )


def _execute(
    path: Path, params: NotebookParameters, cwd: Path, *, progress: bool, timeout: int
) -> tuple[Any, str | None, int | None]:
    """Run the notebook in a private temp dir; return (executed nb, error text or None, failed cell)."""
    import jupytext
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    values = params.model_dump(mode="json")
    error: str | None = None
    failed_cell: int | None = None
    # papermill saves after every cell; that raw copy is unredacted, so it lives in a private
    # temp dir that is removed whatever happens.
    tmp = Path(tempfile.mkdtemp(prefix="ei-nb-"))
    try:
        raw = tmp / "executed.ipynb"
        executed = None
        try:
            executed = papermill.execute_notebook(
                nb,
                str(raw),
                parameters=values,
                kernel_name="python3",
                language="python",
                progress_bar=progress,
                log_output=False,
                cwd=str(cwd),
                execution_timeout=timeout,
                kernel_manager_class=_ipc_kernel_manager(tmp / "kernel"),
            )
        except PapermillExecutionError as exc:
            failed_cell = exc.exec_count
            first = _first_code_line(exc.source)
            error = f"cell [{exc.exec_count}] ({first}) raised {exc.ename}: {_one_line(exc.evalue)}"
        except Exception as exc:  # kernel died, timeout, ...: still write what ran
            error = f"the notebook stopped: {type(exc).__name__}: {_one_line(str(exc))}"
        if executed is None:
            executed = nbformat.read(str(raw), as_version=4) if raw.is_file() else nb
        return executed, error, failed_cell
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ipc_kernel_manager(prefix: Path) -> type:
    """A kernel manager talking to the kernel over Unix sockets in our private temp dir.

    The default TCP transport makes ipykernel warn that it runs "without encryption"; IPC sockets
    in a 0700 folder are private to this user and need no ports.
    """
    from jupyter_client.manager import KernelManager

    class IPCKernelManager(KernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", str(prefix))
            super().__init__(**kwargs)

    return IPCKernelManager


def _first_code_line(source: str) -> str:
    for line in source.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line[:80]
    return "empty cell"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_BINARY_MIMETYPES = ("image/png", "image/jpeg", "image/gif", "application/pdf")


def _postprocess(nb: Any, redactor: Redactor, *, notebook: str, source: Path) -> tuple[Any, dict[str, Any]]:
    """Redact every output, drop papermill's raw-HTML banners, collect emitted results."""
    emitted: dict[str, Any] = {}
    nb.cells = [
        c for c in nb.cells if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])
    ]
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "stream":
                output["text"] = redactor.text(_joined(output.get("text", "")))
            elif kind == "error":
                output["evalue"] = redactor.text(output.get("evalue", ""))
                output["traceback"] = [redactor.text(line) for line in output.get("traceback", [])]
            elif kind in ("display_data", "execute_result"):
                data = output.get("data", {})
                for mimetype in list(data):
                    if mimetype in _BINARY_MIMETYPES:
                        continue
                    value = data[mimetype]
                    if isinstance(value, str | list) and not mimetype.endswith("json"):
                        data[mimetype] = redactor.text(_joined(value))
                    else:
                        data[mimetype] = redactor.value(value)
                for mimetype in (FINDINGS_MIMETYPE, RESULT_MIMETYPE):
                    if mimetype in data and isinstance(data[mimetype], dict):
                        item = data[mimetype]
                        emitted[str(item.get("kind"))] = item.get("data")
    papermill_meta = nb.metadata.setdefault("papermill", {})
    papermill_meta["input_path"] = str(source)
    papermill_meta["output_path"] = f"{notebook}.ipynb"
    papermill_meta["parameters"] = redactor.value(papermill_meta.get("parameters", {}))
    papermill_meta["environment_variables"] = {}
    nb.metadata["edgeinvestigate"] = {"notebook": notebook, "redacted": redactor.pii}
    return nb, emitted


def _joined(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def _count_figures(nb: Any) -> int:
    return sum(
        1
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if "application/vnd.plotly.v1+json" in output.get("data", {})
        and HIDDEN_OUTPUT_TAG not in output.get("metadata", {}).get("tags", [])
    )


def _add_banner_cell(nb: Any, banner: str) -> None:
    import nbformat

    cell = nbformat.v4.new_markdown_cell("**⚠ " + banner.replace("<", "&lt;").replace(">", "&gt;") + "**")
    cell.metadata["tags"] = ["ei-error-banner"]
    nb.cells.insert(0, cell)


def _dump_ipynb(nb: Any) -> str:
    import nbformat

    text: str = nbformat.writes(nb)
    return text


def _write_text(path: Path, text: str) -> None:
    """Write atomically: a reader never sees half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
