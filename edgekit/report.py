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
    if result.format == "tflite":
        lines.append(
            f"layout transposes: {result.layout_transposes}; XNNPACK partitions: {result.xnnpack_partitions}; "
            f"io: {result.io}"
        )
        if result.input_quantization:
            q = result.input_quantization
            lines.append(f"input quantization: real = {q['scale']:.6g} * (q - {q['zero_point']})")
        if result.calibration:
            lines.append(f"calibration: {result.calibration}")
    lines.extend(f"note: {note}" for note in result.notes)
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


# --- benchmarks ---------------------------------------------------------------------------------------

_SERIES_COLORS = ["#3b6ea5", "#d9822b", "#2f9e44", "#c92a2a", "#7048e8", "#0c8599", "#e67700", "#5c940d"]


def _bench_device(run) -> str:
    return run.device.target + (" (emulated)" if run.device.emulated else "")


def bench_rows(report) -> tuple[list[str], list[list[Any]]]:
    """One row per configuration: device, accelerator, threads, status, latency (ms), memory, temperature."""
    headers = ["device", "accel", "threads", "status", "runs", "init ms", "first ms", "warm-up ms", "mean ms",
               "median ms", "p90 ms", "std ms", "peak MB", "temp C"]
    rows = []
    for run in report.runs:
        lat, mem = run.latency, run.memory
        rows.append([
            _bench_device(run), run.config.accelerator, run.config.threads, run.status,
            lat.count if lat else None, lat.init_ms if lat else None, lat.first_ms if lat else None,
            lat.warmup_ms if lat else None, lat.mean_ms if lat else None, lat.median_ms if lat else None,
            lat.p90_ms if lat else None, lat.std_ms if lat else None, mem.overall_mb if mem else None,
            run.temperature_c,
        ])
    return headers, rows


def _bench_problems(report) -> list[str]:
    lines = [f"{_bench_device(r)} {r.config.accelerator}/{r.config.threads}: {r.status}: {r.error}"
             for r in report.runs if r.status != "ok" or r.error]
    return lines + list(report.notes)


def render_bench(report) -> str:
    """The terminal view of a ``BenchReport``: one table row per configuration, then failures and notes."""
    lines = [f"benchmark of {report.model_file}"]
    devices = {r.device.target: r for r in report.runs}
    for run in devices.values():
        d = run.device
        lines.append(f"{d.target}: {d.model or '-'} / {d.soc or '-'} / {d.abi or '-'} / {d.os_version or '-'}, "
                     f"{len(d.cores)} cores; {run.tool} {run.tool_version or ''}".rstrip())
    lines.append(table(*bench_rows(report)))
    lines += _bench_problems(report)
    return "\n".join(lines)


def bench_markdown(report) -> str:
    """A ``BenchReport`` as Markdown: device facts, the latency table, per-op-type tables, notes."""
    lines = [f"# Benchmark: {Path(report.model_file).name}", ""]
    facts_rows = []
    for run in {r.device.target: r for r in report.runs}.values():
        d = run.device
        cores = ", ".join(f"{c.max_khz // 1000 if c.max_khz else '?'}" for c in d.cores)
        facts_rows.append([d.target, d.model, d.soc, d.abi, d.os_version, f"{len(d.cores)} ({cores} MHz)",
                           d.emulated, f"{run.tool} {run.tool_version or ''}".strip()])
    if facts_rows:
        lines += [markdown_table(["device", "model", "SoC/CPU", "ABI", "OS", "cores", "emulated", "tool"],
                                 facts_rows), ""]
    lines += ["## Latency", "", markdown_table(*bench_rows(report)), ""]
    for run in report.runs:
        summary = _op_type_summary(run)
        if summary:
            lines += [f"## Time by op type: {_bench_device(run)}, {run.config.accelerator}, "
                      f"{run.config.threads} thread(s)", "",
                      markdown_table(["op type", "count", "avg ms", "%"],
                                     [[s.op_type, s.count, s.avg_ms, s.percent] for s in summary]), ""]
    problems = _bench_problems(report)
    if problems:
        lines += ["## Notes", ""] + [f"- {p}" for p in problems] + [""]
    return "\n".join(lines)


def bench_html(report) -> str:
    """A self-contained page (inline SVG, no network) for a ``BenchReport``: the latency table, a plot of
    mean latency vs threads per device and accelerator, and per-op-type time bars for each configuration
    that was profiled."""
    body = [f"<h1>Benchmark: {html.escape(Path(report.model_file).name)}</h1>"]
    if any(r.device.emulated for r in report.runs):
        body.append("<p><strong>Emulated CPU:</strong> timings from qemu are not performance figures.</p>")
    headers, rows = bench_rows(report)
    body.append("<h2>Latency</h2>" + html_table(headers, rows))
    series: dict[str, list[tuple[float, float]]] = {}
    for run in report.runs:
        if run.latency is not None:
            key = f"{_bench_device(run)} {run.config.accelerator}"
            series.setdefault(key, []).append((float(run.config.threads), run.latency.mean_ms))
    body.append("<h2>Mean latency vs threads</h2>"
                + line_chart_svg(series, x_label="threads", y_label="mean latency (ms)"))
    for run in report.runs:
        summary = _op_type_summary(run)
        if summary:
            body.append(f"<h2>Time by op type: {html.escape(_bench_device(run))}, "
                        f"{html.escape(run.config.accelerator)}, {run.config.threads} thread(s)</h2>")
            body.append("<p>Summed mean time per op type in a profiled run (profiling slows each op).</p>"
                        + bar_chart_svg([(s.op_type, s.avg_ms) for s in summary[:15]], unit=" ms"))
    problems = _bench_problems(report)
    if problems:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in problems) + "</ul>")
    return page(f"edgekit bench: {Path(report.model_file).name}", "\n".join(body))


def _op_type_summary(run) -> list:
    if run.op_type_summary:
        return run.op_type_summary
    if not run.op_profile:
        return []
    from edgekit.android_bench.parsers import summarize_op_types

    return summarize_op_types(run.op_profile)


def line_chart_svg(series: dict[str, list[tuple[float, float]]], *, x_label: str = "", y_label: str = "",
                   width: int = 640, height: int = 320) -> str:
    """Lines with markers as inline SVG, one per series (``name -> [(x, y), ...]``), with axes and a legend."""
    points = [p for values in series.values() for p in values]
    if not points:
        return "<p>(no data)</p>"
    left, right, top, bottom = 64, 170, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = sorted({x for x, _ in points})
    y_max = _nice_ceiling(max(y for _, y in points) * 1.05)

    def sx(x: float) -> float:
        return left + (plot_w / 2 if len(xs) == 1 else plot_w * (x - xs[0]) / (xs[-1] - xs[0]))

    def sy(y: float) -> float:
        return top + plot_h * (1 - y / y_max)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for i in range(5):
        value = y_max * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(value):.1f}" y2="{sy(value):.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="end">{_cell(value)}</text>')
    for x in xs:
        parts.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_cell(x)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                 f'{html.escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{html.escape(y_label)}</text>')
    for n, (name, values) in enumerate(series.items()):
        color = _SERIES_COLORS[n % len(_SERIES_COLORS)]
        values = sorted(values)
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in values:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}">'
                         f'<title>{html.escape(name)}: {_cell(y)} ms at {_cell(x)}</title></circle>')
        ly = top + 14 + 18 * n
        parts.append(f'<rect x="{left + plot_w + 12}" y="{ly - 9}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{left + plot_w + 30}" y="{ly + 1}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= ``value`` (axis tops with round ticks)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


# --- devices ------------------------------------------------------------------------------------------


def _cores_summary(cores) -> str | None:
    """``8 (4x2.4 + 4x1.8 GHz)``: core count and the clusters by max frequency, fastest first."""
    if not cores:
        return None
    clusters: dict[int | None, int] = {}
    for core in cores:
        clusters[core.max_khz] = clusters.get(core.max_khz, 0) + 1
    if None in clusters:
        return str(len(cores))
    parts = " + ".join(f"{n}x{khz / 1e6:.1f}" for khz, n in sorted(clusters.items(), key=lambda kv: -kv[0]))
    return f"{len(cores)} ({parts} GHz)"


def devices_rows(listings) -> tuple[list[str], list[list[Any]]]:
    """One row per attached device: serial, state, model, SoC, ABI, OS, cores, tools, problem."""
    headers = ["serial", "state", "model", "soc", "abi", "os", "cores", "tools", "note"]
    rows = []
    for item in listings:
        facts = item.facts
        rows.append([
            item.serial, item.state, facts.model if facts else None, facts.soc if facts else None,
            facts.abi if facts else None, facts.os_version if facts else None,
            _cores_summary(facts.cores) if facts else None, ",".join(item.tools) if item.tools else None,
            ("emulated" if facts and facts.emulated else None) if not item.error else item.error,
        ])
    return headers, rows


def render_devices(listings) -> str:
    """The terminal view of ``edgekit devices``."""
    if not listings:
        return "no adb devices attached (USB debugging on? for network devices: adb connect HOST:PORT)"
    return table(*devices_rows(listings))


# --- accuracy (edgekit eval) --------------------------------------------------------------------------


def eval_rows(report) -> tuple[list[str], list[list[Any]]]:
    """One row per evaluated model: top-1, top-5 (percent) and the runtime that ran it."""
    headers = ["model", "runtime", "images", "top-1 %", "top-5 %"]
    rows = [
        [r.model, r.runtime, r.images, f"{100.0 * r.top1:.2f}", None if r.top5 is None else f"{100.0 * r.top5:.2f}"]
        for r in report.results
    ]
    return headers, rows


def confusion_rows(result, classes: list[str]) -> tuple[list[str], list[list[Any]]]:
    """Per-class accuracy and the confusion matrix: rows are true classes, columns predicted classes."""
    headers = ["class", "images", "top-1 %", *classes, "other"]
    rows = [
        [c.name, c.images, f"{100.0 * c.top1:.1f}", *result.confusion[i]] for i, c in enumerate(result.per_class)
    ]
    return headers, rows


def render_eval(report, max_confusion_classes: int = 20) -> str:
    """The terminal view of ``edgekit eval``: accuracy per model, drop and agreement, per-class confusion."""
    lines = [f"accuracy on {report.data}", table(*eval_rows(report))]
    if report.top1_drop is not None:
        lines.append(f"top-1 drop {report.results[0].model} -> {report.results[1].model}: "
                     f"{report.top1_drop:+.2f} points; top-1 agreement {100.0 * report.top1_agreement:.2f}%")
    for result in report.results:
        if len(report.classes) <= max_confusion_classes:
            lines += [f"confusion of {result.model} (rows: true class, columns: predicted)",
                      table(*confusion_rows(result, report.classes))]
        else:
            worst = sorted(result.per_class, key=lambda c: c.top1)[:10]
            lines.append(f"{result.model}: worst classes " +
                         ", ".join(f"{c.name} {100.0 * c.top1:.1f}%" for c in worst))
    lines += report.notes
    return "\n".join(lines)
