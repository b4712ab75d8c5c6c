"""An analysis (``edgekit analyze``): FLOPs, memory access and the ShuffleNetV2 guideline findings."""

from __future__ import annotations

import html
from typing import Any

from edgekit.report.charts import grouped_bar_svg, scatter_svg
from edgekit.report.tables import html_table, markdown_table, table


def _mega(value) -> float:
    return round(float(value) / 1e6, 2)


def analysis_kind_rows(analysis) -> tuple[list[str], list[list[Any]]]:
    """One row per op kind: count, M mult-adds, M elements accessed, and their shares."""
    headers = ["kind", "ops", "source op types", "M mult-adds", "% mult-adds", "M MAC", "% MAC"]
    rows = [[k.kind, k.count, ",".join(k.op_types), _mega(k.mult_adds), round(k.mult_adds_pct, 1),
             _mega(k.memory_access), round(k.memory_access_pct, 1)] for k in analysis.op_kinds]
    return headers, rows


def analysis_layer_rows(analysis, limit: int | None = None) -> tuple[list[str], list[list[Any]]]:
    """One row per layer (execution order), or the ``limit`` layers with the most memory access."""
    headers = ["layer", "op", "kind", "input", "output", "params", "mult-adds", "MAC", "intensity", "ms"]
    layers = list(analysis.layers)
    if limit is not None and len(layers) > limit:
        layers = sorted(layers, key=lambda layer: -layer.memory_access)[:limit]

    def shape(shapes) -> str:
        return " ".join("x".join(str(d) for d in s) for s in shapes) or "-"

    rows = [[layer.name, layer.op_type, layer.kind, shape(layer.input_shapes), shape(layer.output_shapes),
             layer.params, layer.mult_adds, layer.memory_access,
             round(layer.intensity, 2) if isinstance(layer.intensity, (int, float)) else None, layer.measured_ms]
            for layer in layers]
    return headers, rows


def analysis_profile_rows(analysis) -> tuple[list[str], list[list[Any]]]:
    """Predicted (share of mult-adds, of MAC) vs measured share of time per op family."""
    headers = ["op family", "ops", "% mult-adds", "% MAC", "measured ms", "% measured time"]
    profile = analysis.profile
    rows = [[f.family, f.count, round(f.mult_adds_pct, 1), round(f.memory_access_pct, 1), round(f.measured_ms, 3),
             round(f.measured_pct, 1)] for f in (profile.families if profile else [])]
    return headers, rows


def _analysis_summary(analysis) -> list[str]:
    shapes = " ".join("x".join(str(d) for d in s) for s in analysis.input_shapes)
    intensity = analysis.intensity if isinstance(analysis.intensity, (int, float)) else 0.0
    lines = [
        f"analysis of {analysis.source} ({analysis.source_kind}, input {shapes or '?'})",
        f"params {analysis.params:,}; mult-adds {analysis.mult_adds:,} ({analysis.mult_adds / 1e6:.1f} M, the "
        f"paper's FLOPs); memory access {analysis.memory_access:,} elements ({analysis.memory_access / 1e6:.2f} M, "
        f"the paper's MAC); arithmetic intensity {intensity:.2f} mult-adds per element",
    ]
    if analysis.other_ops:
        lines.append("other (unknown) ops: " + ", ".join(f"{k} x{v}" for k, v in analysis.other_ops.items()))
    return lines


def _findings_lines(analysis) -> list[str]:
    return [f"{f.guideline} {f.severity}: {f.message}" for f in analysis.findings]


def render_analysis(analysis, max_layers: int | None = 20) -> str:
    """The terminal view of an ``Analysis``: totals, op-kind shares, findings, profile comparison and
    the ``max_layers`` layers with the most memory access (all layers when None)."""
    lines = _analysis_summary(analysis)
    lines += ["", table(*analysis_kind_rows(analysis)), "", "findings (ShuffleNetV2 guidelines):"]
    lines += [f"  {line}" for line in _findings_lines(analysis)]
    if analysis.profile is not None:
        lines += ["", f"predicted vs measured share per op family ({analysis.profile.source}; "
                      f"{analysis.profile.total_ms:.3f} ms profiled, "
                      f"{analysis.profile.matched_layers} layers matched):",
                  table(*analysis_profile_rows(analysis))]
        lines += [f"note: {n}" for n in analysis.profile.notes]
    count = len(analysis.layers)
    shown = ("all layers" if max_layers is None or count <= max_layers
             else f"the {max_layers} of {count} layers with the most MAC")
    lines += ["", f"{shown}:", table(*analysis_layer_rows(analysis, max_layers))]
    lines += [f"note: {n}" for n in analysis.notes]
    return "\n".join(lines)


def analysis_markdown(analysis) -> str:
    """An ``Analysis`` as Markdown (every layer)."""
    lines = [f"## Analysis: {analysis.source}", ""] + [f"- {line}" for line in _analysis_summary(analysis)[1:]]
    lines += ["", "### Share per op kind", "", markdown_table(*analysis_kind_rows(analysis)), "",
              "### Findings (ShuffleNetV2 guidelines G1-G4)", ""]
    lines += [f"- **{f.guideline} {f.severity}**: {f.message}" for f in analysis.findings]
    if analysis.profile is not None:
        lines += ["", f"### Predicted vs measured ({analysis.profile.source})", "",
                  markdown_table(*analysis_profile_rows(analysis))]
    lines += ["", "### Layers", "", markdown_table(*analysis_layer_rows(analysis)), ""]
    lines += [f"- note: {n}" for n in analysis.notes]
    return "\n".join(lines) + "\n"


def analysis_html(analysis) -> str:
    """An ``Analysis`` as an HTML fragment: totals, share bars, findings, predicted vs measured, MAC vs
    measured time per layer, and the layer table."""
    parts = [f"<h2>Analysis: {html.escape(str(analysis.source))}</h2>"]
    parts += [f"<p>{html.escape(line)}</p>" for line in _analysis_summary(analysis)[1:]]
    kinds = [k for k in analysis.op_kinds if k.mult_adds or k.memory_access]
    parts.append("<h3>Share per op kind: mult-adds (FLOPs) vs memory access (MAC)</h3>")
    parts.append(grouped_bar_svg([k.kind for k in kinds], {"% mult-adds": [k.mult_adds_pct for k in kinds],
                                                           "% MAC": [k.memory_access_pct for k in kinds]}, unit="%"))
    parts.append(html_table(*analysis_kind_rows(analysis)))
    parts.append("<h3>Findings (ShuffleNetV2 guidelines G1-G4)</h3><ul>")
    for f in analysis.findings:
        style = ' style="color:#b3261e"' if f.severity == "warn" else ""
        parts.append(f"<li{style}><b>{html.escape(f.guideline)} {html.escape(f.severity)}</b>: "
                     f"{html.escape(f.message)}</li>")
    parts.append("</ul>")
    if analysis.profile is not None and analysis.profile.families:
        fams = analysis.profile.families
        parts.append(f"<h3>Predicted vs measured share per op family</h3><p>{html.escape(analysis.profile.source)}</p>")
        parts.append(grouped_bar_svg([f.family for f in fams], {
            "% mult-adds": [f.mult_adds_pct for f in fams], "% MAC": [f.memory_access_pct for f in fams],
            "% measured time": [f.measured_pct for f in fams]}, unit="%"))
        parts.append(html_table(*analysis_profile_rows(analysis)))
    timed = [layer for layer in analysis.layers
             if isinstance(layer.measured_ms, (int, float)) and layer.measured_ms > 0]
    if timed:
        parts.append("<h3>Per layer: memory access vs measured time</h3>")
        parts.append(scatter_svg([(float(layer.memory_access), float(layer.measured_ms), f"{layer.name} ({layer.kind})",
                                   layer.kind) for layer in timed], x_label="MAC (elements)", y_label="measured ms"))
    headers, rows = analysis_layer_rows(analysis)
    parts.append(f"<details><summary>All {len(rows)} layers</summary>{html_table(headers, rows)}</details>")
    if analysis.notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in analysis.notes) + "</ul>")
    return "\n".join(parts)
