"""Per-layer int8 error (``edgekit check --per-layer``): the table and the SQNR-per-tensor chart."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from edgekit.report.charts import line_chart_svg
from edgekit.report.tables import html_table, page, table


def per_layer_rows(report) -> tuple[list[str], list[list[Any]]]:
    """One row per quantized tensor in graph order; flagged error jumps are marked with ``<<``."""
    headers = ["#", "tensor", "op", "SQNR dB", "cosine", "jump dB", ""]
    rows = [
        [layer.index, layer.tensor, layer.op, f"{layer.sqnr_db:.1f}", f"{layer.cosine:.5f}",
         None if layer.jump_db is None else f"{layer.jump_db:+.1f}", "<<" if layer.flagged else ""]
        for layer in report.layers
    ]
    return headers, rows


def render_per_layer(report) -> str:
    """The terminal view of ``edgekit check --per-layer``."""
    lines = [f"per-layer int8 error: {report.file} vs {report.reference}",
             f"{report.mode}; {report.samples} inputs from {report.data}",
             table(*per_layer_rows(report))]
    if report.unmatched:
        lines.append(f"{report.unmatched} quantized tensors have no counterpart in the fp32 graph (not shown)")
    lines += [f"suggestion: {s}" for s in report.suggestions]
    return "\n".join(lines)


def per_layer_html(report) -> str:
    """HTML page: the SQNR of every quantized tensor in graph order as a line chart (layer index across, dB up,
    each point's tooltip naming its tensor), then the suggestions and the table."""
    name = Path(report.file).name
    points = []
    for layer in report.layers:
        lost = "" if layer.jump_db is None else f", loses {layer.jump_db:.1f} dB"
        label = f"#{layer.index} {layer.tensor} ({layer.op}{lost}{', flagged' if layer.flagged else ''})"
        points.append((float(layer.index), max(0.0, min(layer.sqnr_db, _SQNR_AXIS_TOP)), label))
    clipped = sum(not 0.0 <= layer.sqnr_db <= _SQNR_AXIS_TOP for layer in report.layers)
    body = (f"<h1>Per-layer int8 error: {html.escape(name)}</h1>"
            f"<p>{html.escape(report.mode)}; {report.samples} inputs from {html.escape(report.data)}</p>"
            "<h2>SQNR of each quantized tensor against the fp32 model (higher is better)</h2>"
            + line_chart_svg({"SQNR of a tensor": points}, x_label="layer index (graph order, as in the table)",
                             y_label="SQNR (dB)", width=900)
            + (f"<p>{clipped} tensor(s) outside 0-{_SQNR_AXIS_TOP:g} dB are drawn at the edge (exact ones at the "
               "top); the table has their values.</p>" if clipped else "")
            + "".join(f"<p>suggestion: {html.escape(s)}</p>" for s in report.suggestions)
            + html_table(*per_layer_rows(report)))
    return page(f"per-layer int8 error: {name}", body)


#: Where the per-layer chart's SQNR axis ends: an exact tensor (inf dB) or one above is drawn there.
_SQNR_AXIS_TOP = 100.0
