"""Markdown for reports, and its one HTML rendering (Python-Markdown, self-contained pages).

Every report is written as Markdown (shown in the Prefect UI and stored in MLflow) and rendered
to a self-contained HTML page here: inline CSS, images as data URIs, no scripts or links to
fetch, so a page reads the same offline. Values taken from the data go through :func:`cell` or
:func:`text`, which escape HTML and Markdown table syntax.
"""

from __future__ import annotations

import base64
import html

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328;
max-width:70rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem}
pre{background:#f6f8fa;padding:.6rem;overflow:auto}
figure{margin:1rem 0}img{max-width:100%}
"""


def text(value: object) -> str:
    """A value from the data as inline Markdown text: HTML escaped, one line."""
    return html.escape(" ".join(str(value).split()), quote=False)


def cell(value: object) -> str:
    """A value from the data as a Markdown table cell (pipes escaped as well)."""
    return text(value).replace("|", "\\|")


def to_html(markdown_text: str) -> str:
    """Markdown (with tables and fenced code) to an HTML fragment."""
    import markdown

    return markdown.markdown(markdown_text, extensions=["tables", "fenced_code", "sane_lists"])


def page(title: str, markdown_text: str, images: dict[str, bytes] | None = None) -> str:
    """A whole self-contained HTML page from Markdown, with PNG images embedded at the end."""
    body = to_html(markdown_text)
    for name, png in (images or {}).items():
        data = base64.b64encode(png).decode()
        label = html.escape(name)
        body += (
            f'<figure><img alt="{label}" src="data:image/png;base64,{data}">'
            f"<figcaption>{label}</figcaption></figure>"
        )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def alias_history(name: str, moves: list[dict]) -> str:
    """The alias moves of a registered model as a Markdown table, newest first."""
    lines = [
        f"# Alias history of {text(name)}",
        "",
        "| # | time (UTC) | alias | from | to | compared with | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for move in reversed(moves):
        compared = move.get("compared_with")
        lines.append(
            f"| {move.get('n', '')} | {cell(move.get('time', ''))} | {cell(move.get('alias', ''))} "
            f"| {'v' + cell(move['from']) if move.get('from') else '-'} "
            f"| v{cell(move.get('to', ''))} | {'v' + cell(compared) if compared else '-'} "
            f"| {cell(move.get('reason', ''))} |"
        )
    if not moves:
        lines.append("| - | | | | | | no alias has been set yet |")
    return "\n".join(lines) + "\n"
