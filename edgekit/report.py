"""The one renderer of edgekit's results: JSON for machines, terminal tables, Markdown and HTML for people.

Results are plain dataclasses; nothing else in edgekit formats them.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from pathlib import Path
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples, paths and numpy scalars as JSON-ready values; non-finite floats as strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    return obj


def to_json(obj: Any) -> str:
    """Serialise a result dataclass as stable, indented JSON (keys in field order) ending in a newline."""
    return json.dumps(to_jsonable(obj), indent=2) + "\n"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table with right-aligned numbers, for terminals."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: list[str], raw: list[Any] | None = None) -> str:
        parts = []
        for i, text in enumerate(values):
            numeric = raw is not None and isinstance(raw[i], (int, float)) and not isinstance(raw[i], bool)
            parts.append(text.rjust(widths[i]) if numeric else text.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(c, r) for c, r in zip(cells, rows, strict=True)]
    return "\n".join(out)


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.1f}"
    return str(value)


# --- models -------------------------------------------------------------------------------------------


def models_rows(infos) -> tuple[list[str], list[list[Any]]]:
    headers = ["model", "family", "params", "MMACs", "input"]
    rows = [
        [i.name, i.family, f"{i.params:,}", round(i.macs / 1e6, 1), "x".join(str(d) for d in i.input_shape)]
        for i in infos
    ]
    return headers, rows


def render_models(infos) -> str:
    return table(*models_rows(infos))


# --- parity -------------------------------------------------------------------------------------------


def parity_rows(report) -> tuple[list[str], list[list[Any]]]:
    headers = ["output", "max abs", "mean abs", "cosine", "SQNR dB", "top-1", "top-5"]
    rows = [
        [o.name, o.max_abs, o.mean_abs, o.cosine, o.sqnr_db, o.top1_agreement, o.top5_agreement]
        for o in report.outputs
    ]
    return headers, rows


def render_parity(report) -> str:
    verdict = "PASS" if report.passed else "FAIL: " + "; ".join(report.failures)
    lines = [
        f"parity {report.precision}: {report.file} vs {report.reference} on {report.runtime}",
        f"inputs: {report.samples} from {report.data}"
        + (f" ({report.skipped_images} unreadable files skipped)" if report.skipped_images else ""),
        table(*parity_rows(report)),
        verdict,
    ]
    return "\n".join(lines)


# --- export -------------------------------------------------------------------------------------------


def render_export(result) -> str:
    lines = [
        f"exported {result.model} -> {result.path} ({result.file_size / 1e6:.2f} MB, {result.precision})",
        f"report: {result.report_path}",
        f"weights: {result.weights_source} (sha256 {result.weights_sha256[:12]})",
    ]
    if result.shuffles:
        spellings = sorted({s.spelling for s in result.shuffles})
        lines.append(
            f"channel shuffles: {len(result.shuffles)} found ({', '.join(spellings)}), "
            f"lowered as {result.shuffle_lowering}"
        )
    else:
        lines.append("channel shuffles: none found")
    ops = ", ".join(f"{k} {v}" for k, v in result.op_histogram.items())
    lines.append(f"ops: {ops}")
    if result.parity is not None:
        lines.append(render_parity(result.parity))
    else:
        lines.append("parity: not checked (--no-check)")
    return "\n".join(lines)


def export_markdown(result) -> str:
    lines = [f"# {result.model} ({result.format}, {result.precision})", ""]
    lines.append(markdown_table(["op", "count"], [[k, v] for k, v in result.op_histogram.items()]))
    if result.parity is not None:
        lines += ["", "## Parity", "", markdown_table(*parity_rows(result.parity))]
    return "\n".join(lines) + "\n"


def export_html(result) -> str:
    """A self-contained page (inline SVG, no network) for one export: op histogram and parity."""
    hist = list(result.op_histogram.items())
    body = [f"<h1>{html.escape(result.model)} &mdash; {result.format} {result.precision}</h1>"]
    body.append(f"<p>{html.escape(result.path)} &middot; {result.file_size / 1e6:.2f} MB</p>")
    body.append("<h2>Operators</h2>" + bar_chart_svg([(k, float(v)) for k, v in hist], unit=""))
    if result.parity is not None:
        headers, rows = parity_rows(result.parity)
        body.append("<h2>Parity</h2>" + html_table(headers, rows))
    return page(f"edgekit: {result.model}", "\n".join(body))


def html_table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>"


def bar_chart_svg(items: list[tuple[str, float]], unit: str = "", width: int = 560) -> str:
    """Horizontal bar chart as inline SVG (one bar per item)."""
    if not items:
        return "<p>(no data)</p>"
    bar_h, label_w = 18, 140
    top = max(v for _, v in items) or 1.0
    height = bar_h * len(items) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, (label, value) in enumerate(items):
        y = i * bar_h + 2
        w = (width - label_w - 70) * value / top
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{html.escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 4}" fill="#3b6ea5"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{html.escape(_cell(value))}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def page(title: str, body: str) -> str:
    style = (
        "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "svg text{font-size:12px;font-family:sans-serif}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{body}</body></html>\n"
    )
