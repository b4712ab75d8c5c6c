"""The ShuffleNetV2 guideline experiments (``edgekit guidelines``) in the paper's table layout."""

from __future__ import annotations

import html
from typing import Any

from edgekit.report.charts import grouped_bar_svg
from edgekit.report.tables import html_table, markdown_table, table


def guideline_table_rows(table_, target: str = "target") -> tuple[list[str], list[list[Any]]]:
    """A guideline table in the paper's layout: the row, its ARM x1 channels, the target's images/s per
    width, then the paper's ARM images/s and GPU batches/s. A network the target could not run shows
    ``failed``."""
    config_header = "ARM (c1,c2) x1" if table_.guideline == "G1" else ("ARM c x1" if table_.guideline == "G2" else None)
    headers = [table_.row_header] + ([config_header] if config_header else [])
    headers += [f"{target} {c}" for c in table_.columns]
    headers += [f"ARM {c}" for c in table_.paper_arm_columns] + [f"GPU {c}" for c in table_.paper_gpu_columns]
    rows = []
    for row in table_.rows:
        values: list[Any] = [row.label] + ([row.cells[0].config if row.cells else row.paper_arm_config]
                                           if config_header else [])
        for cell in row.cells:
            values.append(round(cell.images_per_s, 1) if isinstance(cell.images_per_s, (int, float))
                          else ("failed" if cell.status == "failed" else None))
        values += list(row.paper_arm) + list(row.paper_gpu)
        rows.append(values)
    return headers, rows


def _guideline_checks(table_) -> list[str]:
    lines = [f"paper: {table_.direction}"]
    for c in table_.checks:
        got = f"{c.target_ratio:.2f}" if isinstance(c.target_ratio, (int, float)) else "n/a"
        mark = {True: "yes", False: "no"}.get(c.holds, "n/a" if got == "n/a" else "no clear difference")
        lines.append(f"  {c.column}: {c.slower} / {c.faster} speed: target {got} (paper ARM {c.paper_arm_ratio:.2f}, "
                     f"GPU {c.paper_gpu_ratio:.2f}): same direction: {mark}")
    lines.append(f"verdict: {table_.verdict}")
    return lines


def _guideline_failures(table_) -> list[str]:
    return [f"{row.label} {cell.column}: failed: {cell.error}" for row in table_.rows for cell in row.cells
            if cell.status == "failed"]


def _guidelines_header(report) -> str:
    device = report.device
    what = f"{device.soc or device.model or '-'} ({device.abi or '-'}, {len(device.cores)} cores)" if device else "-"
    return (f"guideline experiments on {report.target}: {what}; input {report.spatial}x{report.spatial}, "
            f"{report.blocks} blocks, {report.threads} thread(s), images/s = 1000 / best median ms")


def render_guidelines(report) -> str:
    """The terminal view of a ``GuidelineReport``: four tables in the paper's layout with verdicts."""
    lines = [_guidelines_header(report)]
    for t in report.tables:
        lines += ["", t.title, table(*guideline_table_rows(t, report.target))]
        lines += _guideline_checks(t) + _guideline_failures(t)
    lines += [""] + [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def guidelines_markdown(report) -> str:
    """A ``GuidelineReport`` as Markdown."""
    lines = ["## ShuffleNetV2 guideline experiments", "", _guidelines_header(report), ""]
    for t in report.tables:
        lines += [f"### {t.title}", "", markdown_table(*guideline_table_rows(t, report.target)), ""]
        lines += [f"- {line.strip()}" for line in _guideline_checks(t) + _guideline_failures(t)] + [""]
    lines += [f"- note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def guidelines_html(report) -> str:
    """A ``GuidelineReport`` as an HTML fragment: per table, speed relative to the first row (target,
    paper ARM, paper GPU) at the smallest width, the table, and the direction checks."""
    parts = ["<h2>ShuffleNetV2 guideline experiments</h2>", f"<p>{html.escape(_guidelines_header(report))}</p>"]
    for t in report.tables:
        parts.append(f"<h3>{html.escape(t.title)}</h3>")
        if t.rows and t.rows[0].cells:
            base = t.rows[0]

            def rel(value, first):
                return 100.0 * value / first if isinstance(value, (int, float)) and isinstance(first, (int, float)) \
                    and first else None

            parts.append(f"<p>Speed relative to the first row at {html.escape(t.columns[0])} (100% = "
                         f"{html.escape(base.label)}):</p>")
            parts.append(grouped_bar_svg([r.label for r in t.rows], {
                report.target: [rel(r.cells[0].images_per_s, base.cells[0].images_per_s) for r in t.rows],
                "paper ARM": [rel(r.paper_arm[0], base.paper_arm[0]) for r in t.rows],
                "paper GPU": [rel(r.paper_gpu[0], base.paper_gpu[0]) for r in t.rows]}, unit="%"))
        parts.append(html_table(*guideline_table_rows(t, report.target)))
        verdict_style = {"reproduced": "color:#2f9e44", "partly reproduced": "color:#d9822b",
                         "not reproduced": "color:#b3261e"}.get(t.verdict, "color:#555")
        checks = _guideline_checks(t)
        parts.append("<ul>" + "".join(f"<li>{html.escape(line.strip())}</li>" for line in checks[:-1])
                     + f'<li style="{verdict_style}"><b>{html.escape(checks[-1])}</b></li>'
                     + "".join(f"<li>{html.escape(line)}</li>" for line in _guideline_failures(t)) + "</ul>")
    parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.notes) + "</ul>")
    return "\n".join(parts)
