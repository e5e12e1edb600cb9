"""Executed notebook -> one self-contained HTML file that opens offline.

nbconvert's ``lab`` template, minus everything it would fetch from a CDN (require.js, MathJax,
mermaid), plus plotly.js inlined once in ``<head>``. Code cells are hidden unless ``show_code``.
A Content-Security-Policy forbids the page from loading or sending anything over the network,
so a report opened on a laptop neither leaks nor breaks without network.
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["count_figure_divs", "export_html"]

_TEMPLATE = r"""
{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<meta http-equiv="Content-Security-Policy" content="{{ resources.ei_csp }}">
<meta name="generator" content="edgeinvestigate {{ resources.ei_version }}">
<style type="text/css">
  body.jp-Notebook { max-width: 1200px; margin: 0 auto; }
  .ei-banner { border: 3px solid #b00020; background: #fff0f0; color: #5a0010; padding: 12px 16px;
               margin: 12px 0; font: 15px/1.4 sans-serif; }
  .ei-banner pre { white-space: pre-wrap; }
  .ei-meta { color: #555; font: 13px/1.4 sans-serif; margin: 8px 0 16px; }
  .jp-RenderedHTMLCommon table.ei-table { border-collapse: collapse; font-size: 12px; table-layout: auto; }
  .jp-RenderedHTMLCommon table.ei-table td, .jp-RenderedHTMLCommon table.ei-table th {
    border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top;
    white-space: pre-wrap; overflow-wrap: break-word; max-width: 70ch; }
  .jp-RenderedHTMLCommon table.ei-table thead tr { text-align: left; }
  pre.ei-pre { white-space: pre-wrap; overflow-wrap: break-word; background: #f6f6f6; padding: 6px 8px; }
  .ei-say { margin: 4px 0; }
</style>
<script type="text/javascript">{{ resources.ei_plotlyjs }}</script>
<script type="text/javascript">
  /* no figure may offer to send its data anywhere (plotly.js "Share chart..."), whatever its own config */
  if (window.Plotly && Plotly.setPlotConfig) {
    Plotly.setPlotConfig({showSendToCloud: false, plotlyServerURL: ""});
  }
</script>
{%- endblock html_head_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.ei_header }}
{%- endblock body_header -%}
"""

# Inline scripts and styles are needed (plotly draws with them); nothing may be fetched or sent.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"
)


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    js: str = get_plotlyjs()
    return js


def export_html(
    nb: Any,
    *,
    show_code: bool = False,
    banner: str | None = None,
    meta: str = "",
    title: str = "",
    hidden_output_tag: str = "ei-hidden",
) -> str:
    """Render ``nb`` (an executed ``NotebookNode``) to a self-contained HTML string.

    ``banner`` (plain text, escaped here) is shown at the top in red; ``meta`` is plain text shown
    under it (notebook, bundle, time of the run); ``title`` (plain text) is the page's ``<title>``.
    """
    import jinja2
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    from edgeinvestigate._version import __version__

    config = Config()
    config.HTMLExporter.exclude_input = not show_code
    config.HTMLExporter.exclude_input_prompt = not show_code
    config.HTMLExporter.exclude_output_prompt = True
    config.HTMLExporter.embed_images = True
    config.TagRemovePreprocessor.remove_single_output_tags = {hidden_output_tag}
    config.TagRemovePreprocessor.remove_cell_tags = {"papermill-error-cell-tag", "ei-error-banner"}
    config.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(
        config=config,
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"ei_report.html.j2": _TEMPLATE})],
    )
    exporter.template_file = "ei_report.html.j2"
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)

    header = ""
    if banner:
        header += f"<div class='ei-banner' role='alert'><pre>{html.escape(banner)}</pre></div>"
    if meta:
        header += f"<div class='ei-meta'>{html.escape(meta)}</div>"
    resources = {
        "ei_plotlyjs": _plotlyjs(),
        "ei_csp": CSP,
        "ei_version": __version__,
        "ei_header": header,
        "metadata": {"name": title or "edgeinvestigate report"},
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    text: str = body
    return text


def count_figure_divs(page: str) -> int:
    """How many plotly figure ``<div>``s a rendered page holds."""
    return page.count('class="plotly-graph-div"')
