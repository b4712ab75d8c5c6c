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

from edgekit.check import KERNEL_MIN_COSINE, REGRESSION_DB
from edgekit.fileio import NotRegularFileError, open_regular_file


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
    """One row per output, each followed by a ``pass if`` row with the limit of every metric that is gated
    (as ``edgekit.check.judge`` applies ``report.thresholds``); a metric without a limit is not gated."""
    headers = ["output", "max abs", "mean abs", "cosine", "SQNR dB", "top-1", "top-5"]
    rows = []
    for o in report.outputs:
        rows.append([o.name, o.max_abs, o.mean_abs, o.cosine, o.sqnr_db, o.top1_agreement, o.top5_agreement])
        limits = _pass_limits(report, o)
        if any(limits):
            rows.append(["pass if", *limits])
    return headers, rows


def _threshold(report, name: str) -> float | None:
    """One limit of ``report.thresholds`` (a ``check.Thresholds`` or its JSON read back); None when not gated."""
    return getattr(getattr(report, "thresholds", None), name, None)


def _pass_limits(report, out) -> list[str | None]:
    """The condition each metric of output ``out`` must meet, in ``parity_rows``'s columns after the name."""
    max_abs, relative = _threshold(report, "max_abs"), _threshold(report, "rel_max_abs")
    if max_abs is not None and relative is not None:  # fp32: the limit grows with the output's largest value
        max_abs = max(max_abs, relative * out.ref_max_abs)
    cosine, top1 = _threshold(report, "min_cosine"), _threshold(report, "min_top1")
    return [None if max_abs is None else f"<= {max_abs:.3g}", None, None if cosine is None else f">= {cosine:g}",
            None, None if top1 is None else f">= {top1:g}", None]


def parity_limits_line(report) -> str:
    """What the ``pass if`` rows cannot show: how the max abs limit is set, and the SQNR gate of ``edgekit
    check`` for quantized files."""
    parts = []
    max_abs, relative = _threshold(report, "max_abs"), _threshold(report, "rel_max_abs")
    if max_abs is not None and relative is not None:
        parts.append(f"max abs <= {max_abs:g}, or {relative:g} x the output's largest absolute reference value when "
                     "that is larger")
    precision = getattr(report, "precision", None)
    if precision not in (None, "fp32"):
        parts.append(f"`edgekit check` also fails a quantized file ({precision}) whose SQNR is more than "
                     f"{REGRESSION_DB:g} dB below what its export recorded in it for the same inputs")
    parts.append("a metric without a limit is reported, not gated")
    return "limits: " + "; ".join(parts)


def render_parity(report) -> str:
    verdict = "PASS" if report.passed else "FAIL: " + "; ".join(report.failures)
    lines = [
        f"parity {report.precision}: {report.file} vs {report.reference} on {report.runtime}",
        f"inputs: {report.samples} from {report.data}"
        + (f" ({report.skipped_images} unreadable files skipped)" if report.skipped_images else ""),
        table(*parity_rows(report)),
        parity_limits_line(report),
        *_kernel_lines(report),
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
        lines.append(f"layout transposes: {result.layout_transposes}; XNNPACK partitions: {result.xnnpack_partitions}")
        if result.calibration:
            lines.append(f"calibration: {result.calibration}")
    if result.usage:
        lines.append(f"use: {result.usage}")
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
        lines += ["", "## Parity", "", markdown_table(*parity_rows(result.parity)), "",
                  parity_limits_line(result.parity)]
    return "\n".join(lines) + "\n"


def export_html(result) -> str:
    """A self-contained page (inline SVG, no network) for one export: op histogram and parity."""
    hist = list(result.op_histogram.items())
    body = [f"<h1>{html.escape(result.model)} &mdash; {result.format} {result.precision}</h1>"]
    body.append(f"<p>{html.escape(result.path)} &middot; {result.file_size / 1e6:.2f} MB</p>")
    if getattr(result, "usage", None):
        body.append("<h2>Use it</h2>" + f"<p>{html.escape(result.usage)}</p>" + _app_snippet_html(result))
    body.append("<h2>Operators</h2>" + bar_chart_svg([(k, float(v)) for k, v in hist], unit=""))
    if result.parity is not None:
        headers, rows = parity_rows(result.parity)
        body.append("<h2>Parity</h2>" + html_table(headers, rows) + _parity_limits_html(result.parity))
    return page(f"edgekit: {result.model}", "\n".join(body))


def _app_snippet_html(result) -> str:
    """A short Android snippet for the file the page describes (MediaPipe for .tflite, ONNX Runtime for .onnx)."""
    from pathlib import Path

    name = Path(result.path).name
    if result.format == "tflite":
        lines = [
            "// com.google.mediapipe:tasks-vision: size, normalisation and labels come from the file's metadata",
            "val classifier = ImageClassifier.createFromOptions(context,",
            "    ImageClassifier.ImageClassifierOptions.builder()",
            f'        .setBaseOptions(BaseOptions.builder().setModelAssetPath("{name}").build())',
            "        .setMaxResults(5).build())",
            "val top = classifier.classify(BitmapImageBuilder(bitmap).build())",
            "    .classificationResult().classifications()[0].categories()[0]",
        ]
    else:
        contract = result.input_contract or {}
        shape = ", ".join(f"{d}L" for d in contract.get("shape", []))
        kind = "UINT8" if contract.get("dtype") == "uint8" else "FLOAT"
        lines = [
            "// com.microsoft.onnxruntime:onnxruntime-android",
            "val env = OrtEnvironment.getEnvironment()",
            f'val session = env.createSession(assets.open("{name}").readBytes())',
            f"// buffer: {contract.get('dtype', 'float32')} NCHW, as the line above says",
            f"val input = OnnxTensor.createTensor(env, buffer, longArrayOf({shape}), OnnxJavaType.{kind})",
            "val scores = session.run(mapOf(session.inputNames.first() to input))[0].value",
        ]
    return f"<pre><code>{html.escape(chr(10).join(lines))}</code></pre>"


def _parity_limits_html(report) -> str:
    return f"<p>{html.escape(parity_limits_line(report))}</p>"


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

#: A configuration is called noisy when its spread, p90 - p10 (else what the tool reported: p95 - p5, with
#: min for an unreported low end), is more than this fraction of its median. Measured on the shared 2-core
#: development VM: 50-run benches of shufflenet_v2_digits and shufflenet_v2_x1_0 int8, xnnpack and cpu, one
#: and two threads, six repeats (48 configurations). One thread on a quiet machine: p10-p90 spanned 5-22% of
#: the median. One thread while other work kept the load average near 3: 14-67%. Two threads, which take both
#: cores from everything else: 21% to 21 times the median, all but one above 60%. 25% flags none of the quiet
#: runs and most of the contended ones. p5-p95 reaches further (quiet single threads 8-97%, half of them
#: under 25%; two threads 34% and up), so it gets 60%. Judging by the upper tail alone (p90 over the median)
#: missed a run whose median itself fell among slow samples (p10 at a tenth of it); the coefficient of
#: variation told nothing apart (28-225% in every group: a few stalls of several milliseconds make the std).
NOISY_SPREAD = {"p90": 0.25, "p95": 0.60}
#: Below this many timed runs p90 is one of the last few samples: the spread is not judged.
NOISY_MIN_RUNS = 10
#: Spread bars reaching past this multiple of the slowest plotted median run off the top of the chart.
_BAR_REACH = 3.0


def _bench_device(run) -> str:
    return run.device.target + (" (emulated)" if run.device.emulated else "")


def _config_name(run) -> str:
    return f"{_bench_device(run)} {run.config.accelerator}/{run.config.threads} thread(s)"


def _latency_ms(latency, name: str) -> float | None:
    """A latency field as a float, None where the tool did not report it (or a bench.json written before the
    field existed has none)."""
    value = getattr(latency, name, None)
    return None if value is None else float(value)


def latency_spread(latency) -> tuple[str, float, str, float] | None:
    """The spread shown around a median: ``(low name, low ms, high name, high ms)``, p10 and p90 where known,
    else the nearest the tool reported (p5 or min, p95 or max); None when it reported no low or no high end."""
    low = next(((n, v) for n in ("p10", "p5", "min") if (v := _latency_ms(latency, f"{n}_ms")) is not None), None)
    high = next(((n, v) for n in ("p90", "p95", "max") if (v := _latency_ms(latency, f"{n}_ms")) is not None), None)
    return None if low is None or high is None else (*low, *high)


def latency_noise(latency) -> tuple[str, float] | None:
    """The spread that judges noise, as a fraction of the median: ``("p10-p90", 0.66)`` when p90 - p10 is 66% of
    it. None when the tool reported no median or neither p90 nor p95, or fewer than ``NOISY_MIN_RUNS`` runs
    were timed."""
    median = _latency_ms(latency, "median_ms")
    spread = latency_spread(latency)
    if not median or spread is None or spread[2] not in NOISY_SPREAD or latency.count < NOISY_MIN_RUNS:
        return None
    low_name, low, high_name, high = spread
    return f"{low_name}-{high_name}", (high - low) / median


def is_noisy(latency) -> bool:
    """True when ``latency``'s spread is a larger fraction of its median than ``NOISY_SPREAD`` allows."""
    noise = latency_noise(latency) if latency is not None else None
    return noise is not None and noise[1] > NOISY_SPREAD[noise[0].split("-")[1]]


def _median_cell(latency) -> str | None:
    """``0.131 (0.129-0.172)`` under a "median ms (p10-p90)" header; other ends of the spread are named."""
    median = _latency_ms(latency, "median_ms")
    spread = latency_spread(latency)
    if median is None or spread is None:
        return None if median is None else _cell(median)
    low_name, low, high_name, high = spread
    if (low_name, high_name) == ("p10", "p90"):
        return f"{_cell(median)} ({_cell(low)}-{_cell(high)})"
    return f"{_cell(median)} ({low_name} {_cell(low)}-{high_name} {_cell(high)})"


def _spread_cell(latency) -> str | None:
    """``66% noisy``: the spread as a share of the median, named when it is not p10-p90."""
    noise = latency_noise(latency)
    if noise is None:
        return None
    name = "" if noise[0] == "p10-p90" else f"{noise[0]} "
    return f"{name}{100 * noise[1]:.0f}%" + (" noisy" if is_noisy(latency) else "")


def bench_rows(report) -> tuple[list[str], list[list[Any]]]:
    """One row per configuration: device, accelerator, threads, status, the median with its spread, the spread
    as a share of the median (flagged noisy), the mean, first-run times, memory and temperature."""
    headers = ["device", "accel", "threads", "status", "runs", "median ms (p10-p90)", "spread", "mean ms",
               "init ms", "first ms", "warm-up ms", "peak MB", "temp C"]
    rows = []
    for run in report.runs:
        lat, mem = run.latency, run.memory
        rows.append([
            _bench_device(run), run.config.accelerator, run.config.threads, run.status,
            lat.count if lat else None, _median_cell(lat) if lat else None, _spread_cell(lat) if lat else None,
            *([_latency_ms(lat, f) for f in ("mean_ms", "init_ms", "first_ms", "warmup_ms")] if lat else [None] * 4),
            mem.overall_mb if mem else None, run.temperature_c,
        ])
    return headers, rows


def bench_device_rows(report) -> tuple[list[str], list[list[Any]]]:
    """One row per device: what it is, its cores (count and max frequencies) and the tool that measured."""
    headers = ["device", "model", "SoC/CPU", "ABI", "OS", "cores", "emulated", "tool"]
    rows = [[d.target, d.model, d.soc, d.abi, d.os_version, _cores_summary(d.cores), d.emulated,
             f"{run.tool} {run.tool_version or ''}".strip()]
            for run in {r.device.target: r for r in report.runs}.values() for d in [run.device]]
    return headers, rows


def _fastest_lines(report) -> list[str]:
    """Per device, the configuration with the lowest median, with its spread: the headline of a benchmark."""
    best: dict[str, Any] = {}
    for run in report.runs:
        median = _latency_ms(run.latency, "median_ms") if run.latency and run.status == "ok" else None
        if median is not None and (run.device.target not in best
                                   or median < _latency_ms(best[run.device.target].latency, "median_ms")):
            best[run.device.target] = run
    return [f"fastest: {_config_name(run)}: median {_cell(_latency_ms(run.latency, 'median_ms'))} ms"
            + (f", {_spread_text(run.latency)}" if latency_spread(run.latency) else "") for run in best.values()]


def _spread_text(latency) -> str:
    """``p10-p90 5.5-8 ms (noisy)`` for a latency with a spread."""
    low_name, low, high_name, high = latency_spread(latency)
    return f"{low_name}-{high_name} {_cell(low)}-{_cell(high)} ms" + (" (noisy)" if is_noisy(latency) else "")


def _noise_notes(report) -> list[str]:
    notes = []
    for run in report.runs:
        if run.status == "failed" or not is_noisy(run.latency):
            continue
        name, share = latency_noise(run.latency)
        every_core = len(run.device.cores) and run.config.threads >= len(run.device.cores)
        notes.append(f"noisy: {_config_name(run)}: {name} spans {100 * share:.0f}% of the median (noisy above "
                     f"{100 * NOISY_SPREAD[name.split('-')[1]]:.0f}%)"
                     + ("; its threads take every core, so anything else running slows it" if every_core else "")
                     + "; close other apps, raise --min-secs or add --cooldown")
    return notes


def _bench_problems(report) -> list[str]:
    lines = [f"{_bench_device(r)} {r.config.accelerator}/{r.config.threads}: {r.status}: {r.error}"
             for r in report.runs if r.status != "ok" or r.error]
    return lines + _noise_notes(report) + list(report.notes)


def render_bench(report) -> str:
    """The terminal view of a ``BenchReport``: the devices, one table row per configuration, the fastest
    configuration by median, then failures, noisy configurations and notes."""
    lines = [f"benchmark of {report.model_file}"]
    for run in {r.device.target: r for r in report.runs}.values():
        d = run.device
        lines.append(f"{d.target}: {d.model or '-'} / {d.soc or '-'} / {d.abi or '-'} / {d.os_version or '-'}, "
                     f"cores {_cores_summary(d.cores) or '?'}; {run.tool} {run.tool_version or ''}".rstrip())
    lines.append(table(*bench_rows(report)))
    lines += _fastest_lines(report) + _bench_problems(report)
    return "\n".join(lines)


def bench_markdown(report) -> str:
    """A ``BenchReport`` as Markdown: device facts, the latency table, the fastest configuration, per-op-type
    tables, notes."""
    lines = [f"# Benchmark: {Path(report.model_file).name}", ""]
    if report.runs:
        lines += [markdown_table(*bench_device_rows(report)), ""]
    lines += ["## Latency", "", markdown_table(*bench_rows(report)), ""]
    fastest = _fastest_lines(report)
    if fastest:
        lines += [f"- {line}" for line in fastest] + [""]
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
    """A self-contained page (inline SVG, no network) for a ``BenchReport``: device facts, the latency table,
    a plot of the median latency (bars: its spread) vs threads per device and accelerator, per-op-type time
    bars for each configuration that was profiled, and notes."""
    body = [f"<h1>Benchmark: {html.escape(Path(report.model_file).name)}</h1>"]
    if any(r.device.emulated for r in report.runs):
        body.append("<p><strong>Emulated CPU:</strong> timings from qemu are not performance figures.</p>")
    chart = latency_chart_html(_latency_points(report))
    body.append(_bench_html_body(report, "h2", chart=chart and "<h2>Median latency vs threads</h2>" + chart))
    return page(f"edgekit bench: {Path(report.model_file).name}", "\n".join(body))


def _bench_html_body(report, heading: str, chart: str = "") -> str:
    """Device facts, the latency table, the fastest configuration, ``chart``, op-type bars and notes, with
    ``heading`` (``h2``, ``h4``...) over each part."""
    def head(text: str) -> str:
        return f"<{heading}>{html.escape(text)}</{heading}>"

    parts = []
    if report.runs:
        parts.append(head("Devices") + html_table(*bench_device_rows(report)))
    parts.append(head("Latency") + html_table(*bench_rows(report)))
    parts += [f"<p><strong>{html.escape(line)}</strong></p>" for line in _fastest_lines(report)]
    parts.append(chart)
    for run in report.runs:
        summary = _op_type_summary(run)
        if summary:
            parts.append(head(f"Time per op type: {_bench_device(run)}, {run.config.accelerator}, "
                              f"{run.config.threads} thread(s)")
                         + "<p>Summed mean time per op type in a profiled run (profiling slows each op).</p>"
                         + bar_chart_svg([(s.op_type, float(s.avg_ms)) for s in summary[:15]], unit=" ms"))
    problems = _bench_problems(report)
    if problems:
        parts.append(head("Notes") + "<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in problems) + "</ul>")
    return "".join(parts)


def _latency_points(report) -> list[tuple[str, str, float, float, tuple[float, float, str] | None, str]]:
    """``(model file name, device and accelerator, threads, median ms, (low, high, what they are) of its spread
    or None, what the point is)`` of each run of ``report`` with a latency. Where the tool reported no median
    the mean stands in, and the last item says so."""
    points = []
    for run in report.runs:
        lat = run.get("latency") if isinstance(run, dict) else run.latency
        if lat is None:
            continue
        median = _latency_ms(lat, "median_ms")
        spread = latency_spread(lat)
        if spread is not None:
            spread = (spread[1], spread[3], f"{_config_name(run)}: {_spread_text(lat)}")
        points.append((Path(str(run.model_file)).name, f"{_bench_device(run)} {run.config.accelerator}",
                       float(run.config.threads), median if median is not None else float(lat.mean_ms), spread,
                       f"{_config_name(run)}, " + ("median" if median is not None else "mean (no median reported)")))
    return points


def latency_chart_html(points, *, several_models: bool = False) -> str:
    """The latency-vs-threads chart of ``_latency_points``: one line through the medians per device and
    accelerator (per model too when ``several_models``), a bar over each point for its spread, and a line
    saying what the bars span and how many were cut at the top. Empty without points."""
    if not points:
        return ""
    top = _BAR_REACH * max(value for _, _, _, value, _, _ in points)
    series: dict[str, list[tuple]] = {}
    bars: dict[str, list[tuple]] = {}
    cut = 0
    for model, target, threads, value, spread, what in points:
        key = f"{Path(model).stem[:14]} {target}" if several_models else target  # short names fit the legend
        series.setdefault(key, []).append((threads, value, what))
        if spread is not None:
            low, high, tip = spread
            cut += high > top
            bars.setdefault(key, []).append((threads, min(low, top), high if high <= top else math.inf, tip))
    return (line_chart_svg(series, bars=bars, x_label="threads", y_label="median latency (ms)")
            + "<p>Points are medians; bars span p10-p90 where measured, else what the tool reported (p5 or min "
            "to p95 or max)." + (f" {cut} bar(s) reaching past {_BAR_REACH:g}x the slowest median run off the "
                                 "top; the table and the bar's tooltip have their values." if cut else "") + "</p>")


def _op_type_summary(run) -> list:
    if run.op_type_summary:
        return run.op_type_summary
    if not run.op_profile:
        return []
    from edgekit.android_bench.parsers import summarize_op_types

    return summarize_op_types(run.op_profile)


def line_chart_svg(series: dict[str, list[tuple]], *, x_label: str = "", y_label: str = "",
                   width: int = 640, height: int = 320, bars: dict[str, list[tuple]] | None = None) -> str:
    """Lines with markers as inline SVG, one per series (``name -> [(x, y) or (x, y, point label), ...]``), with
    axes, tick labels (every x value, or round steps when there are more than 12) and a legend. A unit in
    parentheses at the end of ``y_label`` ("latency (ms)") is repeated in each point's tooltip. ``bars``
    (``name -> [(x, low, high) or (x, low, high, tooltip), ...]``) draws a vertical bar from low to high in the
    colour of the series of that name, under its line: the spread around each point; a high of ``math.inf``
    runs off the top of the chart, without an end mark."""
    points = [p for values in series.values() for p in values]
    if not points:
        return "<p>(no data)</p>"
    bars = bars or {}
    left, right, top, bottom = 64, 170, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = sorted({p[0] for p in points})
    y_max = _nice_ceiling(max([p[1] for p in points]
                              + [b[2] for spans in bars.values() for b in spans if math.isfinite(b[2])]) * 1.05)
    unit = y_label.rsplit("(", 1)[1].rstrip(")") if y_label.endswith(")") and "(" in y_label else ""

    pad = 10 if bars else 0  # bars at the first and last x stay clear of the frame

    def sx(x: float) -> float:
        return left + (plot_w / 2 if len(xs) == 1 else pad + (plot_w - 2 * pad) * (x - xs[0]) / (xs[-1] - xs[0]))

    def sy(y: float) -> float:
        return top + plot_h * (1 - y / y_max)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for i in range(5):
        value = y_max * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(value):.1f}" y2="{sy(value):.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="end">{_cell(value)}</text>')
    for x in xs if len(xs) <= 12 else _round_steps(xs[0], xs[-1]):
        parts.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
                     'stroke="#999"/>')
        parts.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_cell(x)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                 f'{html.escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{html.escape(y_label)}</text>')
    for n, (name, values) in enumerate(series.items()):
        color = _SERIES_COLORS[n % len(_SERIES_COLORS)]
        dodge = 4 * (n - (len(series) - 1) / 2)  # bars of several series at one x stand side by side
        for x, low, high, *tip in bars.get(name, []):
            tip = tip[0] if tip else f"{name}: {_cell(low)}-{_cell(high)} {unit} at {_cell(x)}"
            parts.append(f'<g stroke="{color}" stroke-opacity="0.55" stroke-width="1.5"><title>'
                         f'{html.escape(" ".join(tip.split()))}</title>'
                         + "".join(f'<line x1="{sx(x) + dodge - a:.1f}" x2="{sx(x) + dodge + a:.1f}" '
                                   f'y1="{sy(y1):.1f}" y2="{sy(y2):.1f}"/>'
                                   for a, y1, y2 in ((0, low, min(high, y_max)), (4, low, low), (4, high, high))
                                   if y2 <= y_max) + "</g>")
        values = sorted(values, key=lambda p: p[0])
        path = " ".join(f"{sx(p[0]):.1f},{sy(p[1]):.1f}" for p in values)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        radius = 3.5 if len(values) <= 60 else 2.0  # many points: small markers, so the line stays readable
        for x, y, *label in values:
            tip = (f"{label[0]}: {_cell(y)} {unit}" if label else f"{name}: {_cell(y)} {unit} at {_cell(x)}")
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{radius}" fill="{color}">'
                         f'<title>{html.escape(" ".join(tip.split()))}</title></circle>')
        ly = top + 14 + 18 * n
        parts.append(f'<rect x="{left + plot_w + 12}" y="{ly - 9}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{left + plot_w + 30}" y="{ly + 1}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _round_steps(low: float, high: float, most: int = 10) -> list[float]:
    """At most about ``most`` round axis ticks (steps of 1, 2 or 5 times a power of ten) from ``low`` to ``high``."""
    span = high - low
    power = 10 ** math.floor(math.log10(span / most)) if span > 0 else 1.0
    step = next(m * power for m in (1, 2, 5, 10) if span / (m * power) <= most)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) // step) + 1)]


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= ``value`` (axis tops with round ticks)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


# --- devices ------------------------------------------------------------------------------------------


def _cores_summary(cores) -> str | None:
    """``8 (4x2.4 + 4x1.8 GHz)``: core count and the clusters by max frequency, fastest first; ``2 (2.6 GHz
    clock)`` where only the clock /proc/cpuinfo showed is known (a VM), the range when cores differ; the count
    alone where neither is known. None for no cores."""
    if not cores:
        return None
    clusters: dict[int | None, int] = {}
    for core in cores:
        clusters[core.max_khz] = clusters.get(core.max_khz, 0) + 1
    if None in clusters:
        clocks = [getattr(core, "clock_khz", None) for core in cores]  # none in bench.json from before the field
        if None in clocks:
            return str(len(cores))
        low, high = f"{min(clocks) / 1e6:.1f}", f"{max(clocks) / 1e6:.1f}"
        return f"{len(cores)} ({low if low == high else f'{low}-{high}'} GHz clock)"
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


def _kernel_lines(report) -> list[str]:
    """int8 ONNX: how the real integer kernels compare with the float-simulated QDQ graph."""
    k = getattr(report, "kernels", None)
    if k is None:
        return []
    return [f"integer kernels vs float-simulated QDQ: cosine {k.cosine:.6f} (pass if >= {KERNEL_MIN_COSINE:g}), "
            f"SQNR {_cell(k.sqnr_db)} dB, top-1 agreement {_cell(k.top1_agreement)}"]


# --- analysis -----------------------------------------------------------------------------------------


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


def grouped_bar_svg(categories: list[str], series: dict[str, list[float]], *, unit: str = "",
                    width: int = 760) -> str:
    """Horizontal grouped bars as inline SVG: one group per category, one bar per series, with a legend."""
    if not categories or not series:
        return "<p>(no data)</p>"
    values = [v for vs in series.values() for v in vs if isinstance(v, (int, float))]
    top = max(values, default=0.0) or 1.0
    bar_h, label_w, legend_h = 12, 150, 22
    group_h = bar_h * len(series) + 8
    height = legend_h + group_h * len(categories) + 4
    plot_w = width - label_w - 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for n, name in enumerate(series):
        color = _SERIES_COLORS[n % len(_SERIES_COLORS)]
        x = label_w + n * 150
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{color}"/>'
                     f'<text x="{x + 16}" y="14">{html.escape(name)}</text>')
    for i, category in enumerate(categories):
        y0 = legend_h + i * group_h
        parts.append(f'<text x="{label_w - 6}" y="{y0 + group_h / 2 + 2:.1f}" text-anchor="end">'
                     f'{html.escape(category)}</text>')
        for n, (name, vs) in enumerate(series.items()):
            value = vs[i] if i < len(vs) and isinstance(vs[i], (int, float)) else None
            y = y0 + n * bar_h
            if value is None:
                parts.append(f'<text x="{label_w + 2}" y="{y + 10}" fill="#888">n/a</text>')
                continue
            w = plot_w * max(value, 0.0) / top
            color = _SERIES_COLORS[n % len(_SERIES_COLORS)]
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{color}">'
                         f'<title>{html.escape(name)}: {_cell(value)}{unit}</title></rect>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 10}" font-size="10">'
                         f'{_cell(round(value, 2))}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def scatter_svg(points: list[tuple[float, float, str, str]], *, x_label: str = "", y_label: str = "",
                width: int = 640, height: int = 360) -> str:
    """Points ``(x, y, tooltip, group)`` as an inline SVG scatter plot with axes and a legend by group."""
    if not points:
        return "<p>(no data)</p>"
    left, right, top, bottom = 64, 150, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    x_max = _nice_ceiling(max(p[0] for p in points) * 1.05)
    y_max = _nice_ceiling(max(p[1] for p in points) * 1.05)
    groups = list(dict.fromkeys(p[3] for p in points))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for i in range(5):
        yv, xv = y_max * i / 4, x_max * i / 4
        y = top + plot_h * (1 - i / 4)
        x = left + plot_w * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_si(yv)}</text>')
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_si(xv)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                 f'{html.escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{html.escape(y_label)}</text>')
    for x, y, tip, group in points:
        color = _SCATTER_COLORS[groups.index(group) % len(_SCATTER_COLORS)]
        cx, cy = left + plot_w * x / x_max, top + plot_h * (1 - y / y_max)
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{color}" fill-opacity="0.75">'
                     f'<title>{html.escape(tip)}: {_cell(x)}, {_cell(y)}</title></circle>')
    for n, group in enumerate(groups):
        ly = top + 14 + 18 * n
        color = _SCATTER_COLORS[n % len(_SCATTER_COLORS)]
        parts.append(f'<rect x="{left + plot_w + 12}" y="{ly - 9}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{left + plot_w + 30}" y="{ly + 1}">{html.escape(group)}</text>')
    parts.append("</svg>")
    return "".join(parts)


_SCATTER_COLORS = _SERIES_COLORS + ["#862e9c", "#495057", "#e64980", "#74b816"]


def _si(value: float) -> str:
    """An axis label: 0, 0.25, 500k, 1.5M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return _cell(value)


# --- guidelines ---------------------------------------------------------------------------------------


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


# --- run directory report -----------------------------------------------------------------------------


class _Record(dict):
    """A JSON object read back with attribute access, so the renderers above take it like the dataclass."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name, name=name, obj=self) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _records(value: Any) -> Any:
    if isinstance(value, dict):
        return _Record({k: _records(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_records(v) for v in value]
    return value


@dataclasses.dataclass
class RunDirectory:
    """Everything ``collect_run_dir`` recognised in a directory, by kind (JSON read back as records)."""

    path: str
    exports: list = dataclasses.field(default_factory=list)
    parity: list = dataclasses.field(default_factory=list)
    benches: list = dataclasses.field(default_factory=list)
    analyses: list = dataclasses.field(default_factory=list)
    guidelines: list = dataclasses.field(default_factory=list)
    layer_errors: list = dataclasses.field(default_factory=list)  # (title, [{name, ...metrics}])
    skipped: list = dataclasses.field(default_factory=list)  # files not recognised, with why


def classify_result(data: Any) -> str | None:
    """What a result JSON holds: ``analysis``, ``guidelines``, ``bench``, ``export``, ``parity``,
    ``layer_errors`` or None."""
    if not isinstance(data, dict):
        return None
    if data.get("kind") in ("analysis", "guidelines"):
        return data["kind"]
    if "runs" in data and "model_file" in data:
        return "bench"
    if "format" in data and "op_histogram" in data:
        return "export"
    if "outputs" in data and "passed" in data:
        return "parity"
    if isinstance(data.get("layer_errors"), list):
        return "layer_errors"
    layers = data.get("layers")  # edgekit.per_layer's PerLayerReport: per-tensor error of an int8 model
    if isinstance(layers, list) and layers and isinstance(layers[0], dict) and "sqnr_db" in layers[0]:
        return "layer_errors"
    return None


def _error_rows(item) -> list:
    """The per-layer rows of a layer-error record, each with a ``name``."""
    rows = item.get("layer_errors") or item.get("layers") or []
    return [dict(r, name=r.get("name") or r.get("node") or r.get("tensor") or str(i)) for i, r in enumerate(rows)]


# One renderer per kind and format, shared by the report and by the check in ``collect_run_dir`` that each
# file renders, so a file of the wrong shape is listed as skipped instead of ending the report in a traceback.


def _export_markdown_section(result) -> list[str]:
    return [f"## Export: {result._file}", "", export_markdown(result).split("\n", 1)[1], ""]


def _parity_markdown_section(report) -> list[str]:
    return [f"## Parity: {report._file}", "", markdown_table(*parity_rows(report)), "", parity_limits_line(report), "",
            "PASS" if report.passed else "FAIL: " + "; ".join(report.failures), ""]


def _bench_markdown_section(report) -> list[str]:
    return [bench_markdown(report).replace("# Benchmark", f"## Benchmark ({report._file})", 1)]


def _layer_errors_markdown_section(item) -> list[str]:
    metric_rows = [[r.get("name"), *[r.get(k) for k in ("sqnr_db", "max_abs", "cosine")]] for r in _error_rows(item)]
    return [f"## Per-layer error: {item.get('_file', '')}", "",
            markdown_table(["layer", "SQNR dB", "max abs", "cosine"], metric_rows), ""]


def _layer_error_chart(item) -> str:
    rows = _error_rows(item)
    metric = next((m for m in ("sqnr_db", "max_abs", "mean_abs", "cosine") if rows and m in rows[0]), None)
    if metric is None:
        return "<p>(no per-layer metric)</p>"
    return (f"<p>{html.escape(metric)} per layer</p>"
            + bar_chart_svg([(str(r.get("name", i)), float(r[metric])) for i, r in enumerate(rows)
                             if isinstance(r.get(metric), (int, float))]))


def _export_html_section(result) -> str:
    parts = [f"<h3>{html.escape(result.model)} &mdash; {html.escape(result.format)} "
             f"{html.escape(result.precision)}</h3><p>{html.escape(result._file)} &middot; "
             f"{result.file_size / 1e6:.2f} MB</p>",
             bar_chart_svg([(k, int(v)) for k, v in result.op_histogram.items()])]
    if result.get("parity"):
        parts.append(html_table(*parity_rows(result.parity)) + _parity_limits_html(result.parity))
    return "".join(parts)


def _parity_html_section(report) -> str:
    return (f"<h3>Parity: {html.escape(report._file)}</h3>" + html_table(*parity_rows(report))
            + _parity_limits_html(report))


def _bench_html_section(report) -> str:
    return (f"<h3>{html.escape(report._file)}: {html.escape(Path(str(report.model_file)).name)}</h3>"
            + _bench_html_body(report, "h4"))


def _analysis_html_section(analysis) -> str:
    return analysis_html(analysis).replace("<h2>", "<h3>").replace("</h2>", "</h3>")


_RENDERERS = {
    "export": (_export_markdown_section, _export_html_section),
    "parity": (_parity_markdown_section, _parity_html_section),
    "bench": (_bench_markdown_section, _bench_html_section, _latency_points),
    "analysis": (analysis_markdown, _analysis_html_section),
    "guidelines": (guidelines_markdown, guidelines_html),
    "layer_errors": (_layer_errors_markdown_section, _layer_error_chart),
}
_WRITTEN_BY = {"export": "edgekit export", "parity": "edgekit check", "bench": "edgekit bench",
               "analysis": "edgekit analyze", "guidelines": "edgekit guidelines",
               "layer_errors": "edgekit check --per-layer"}
_KIND_NAMES = {"layer_errors": "per-layer error"}


def _read_json(file: Path) -> Any:
    """The JSON value in ``file``. Raises ValueError whose message says why when ``file`` is not a regular
    file of JSON text (a named pipe would block the read, so it is never opened)."""
    try:
        with open_regular_file(file) as handle:
            raw = handle.read()
    except NotRegularFileError as exc:
        raise ValueError(f"a {exc.kind}, not a file") from None
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError:
        raise ValueError("not JSON (not UTF-8 text)") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


def _what_is_wrong(exc: Exception) -> str:
    """What a renderer's exception says about the record it was given, in a user's words."""
    if isinstance(exc, AttributeError) and isinstance(exc.obj, _Record):
        return f"field {exc.name!r} is missing"
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        return f"field {exc.args[0]!r} is missing"
    if isinstance(exc, AttributeError) and exc.name is not None:
        value = "null" if exc.obj is None else f"a {_json_type(exc.obj)}"
        wanted = "an object" if hasattr(dict, exc.name) else f"an object with field {exc.name!r}"
        return f"{value} where {wanted} belongs"
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return f"a field of the wrong type or value ({type(exc).__name__}: {first_line})"


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "list"}.get(type(value), "object")


def _render_problem(kind: str, record) -> str | None:
    """Why ``record`` (of ``kind``) cannot be rendered, or None when every renderer of its kind takes it."""
    try:
        for render in _RENDERERS[kind]:
            render(record)
    except Exception as exc:  # any renderer failure means this file is not the shape its kind has
        what = f"{_KIND_NAMES.get(kind, kind)} result, but {_what_is_wrong(exc)}"
        return f"{what}; rerun `{_WRITTEN_BY[kind]}` to write it again"
    return None


def collect_run_dir(path: str | Path) -> RunDirectory:
    """Read every ``*.json`` under ``path`` (recursively) and sort it by kind. A file that is not readable
    JSON, not an edgekit result, or a result missing fields or with fields of the wrong type is listed in
    ``skipped`` with the reason; nothing raises for a bad file. Raises ``OutputError`` when ``path`` is not
    a directory."""
    from edgekit.errors import OutputError

    root = Path(path)
    if not root.is_dir():
        raise OutputError(f"{root} is not a directory; pass the --output directory of an edgekit command")
    found = RunDirectory(path=str(root.resolve()))
    by_kind = {"analysis": found.analyses, "guidelines": found.guidelines, "bench": found.benches,
               "export": found.exports, "parity": found.parity, "layer_errors": found.layer_errors}
    for file in sorted(root.rglob("*.json")):
        name = str(file.relative_to(root))
        try:
            data = _read_json(file)
            record = _records(data)
        except (ValueError, RecursionError) as exc:
            reason = exc if isinstance(exc, ValueError) else "JSON nested too deeply to read"
            found.skipped.append(f"{name}: {reason}; rerun the command that wrote it, or remove it")
            continue
        kind = classify_result(data)
        if kind is None:
            found.skipped.append(f"{name}: not an edgekit result")
            continue
        record["_file"] = name
        problem = _render_problem(kind, record)
        if problem is not None:
            found.skipped.append(f"{name}: {problem}")
            continue
        by_kind[kind].append(record)
        nested = record.get("parity") if kind == "export" else None
        if isinstance(nested, dict) and isinstance(nested.get("layer_errors"), list):
            nested["_file"] = name
            problem = _render_problem("layer_errors", nested)
            if problem is None:
                found.layer_errors.append(nested)
            else:
                found.skipped.append(f"{name}: its per-layer errors: {problem}")
    return found


def _attach_profiles(found: RunDirectory) -> None:
    """Give analyses of a file the per-layer times of a profiled bench run of the same file name."""
    from edgekit.analysis.profile import compare_profile

    for analysis in found.analyses:
        if analysis.get("profile") or analysis.source_kind == "pytorch":
            continue
        for bench in found.benches:
            runs = [r for r in bench.runs if Path(str(r.model_file)).name == Path(str(analysis.source)).name
                    and (r.get("op_profile") or r.get("op_type_summary"))]
            if runs:
                run = runs[0]
                where = f"{Path(str(run.model_file)).name} on {run.device.target}"
                try:
                    analysis["profile"] = compare_profile(analysis, run.get("op_profile") or [],
                                                          run.get("op_type_summary") or [], where)
                except Exception as exc:  # op profile rows of the wrong shape: the bench renders without them
                    found.skipped.append(f"{bench._file}: op profile not compared with {analysis._file}: "
                                         f"{_what_is_wrong(exc)}")
                    continue
                break


def run_dir_markdown(found: RunDirectory) -> str:
    """Everything in a run directory as one Markdown document."""
    lines = [f"# edgekit report: {found.path}", ""]
    for result in found.exports:
        lines += _export_markdown_section(result)
    for report in found.parity:
        lines += _parity_markdown_section(report)
    for report in found.benches:
        lines += _bench_markdown_section(report)
    for analysis in found.analyses:
        lines += [analysis_markdown(analysis)]
    for report in found.guidelines:
        lines += [guidelines_markdown(report)]
    for item in found.layer_errors:
        lines += _layer_errors_markdown_section(item)
    if found.skipped:
        lines += ["## Files not included", ""] + [f"- {s}" for s in found.skipped] + [""]
    return "\n".join(lines) + "\n"


def run_dir_html(found: RunDirectory) -> str:
    """Everything in a run directory as one self-contained HTML page (inline SVG, no network): exports,
    parity, benchmarks (latency per target and threads, time per op type), analyses (shares, findings,
    MAC vs measured time per layer), guideline tables and per-layer int8 error when present."""
    _attach_profiles(found)
    body = [f"<h1>edgekit report</h1><p>{html.escape(found.path)}</p>"]
    toc = []
    if found.exports or found.parity:
        toc.append("exports and parity")
        body.append('<h2 id="exports">Exports and parity</h2>')
        body += [_export_html_section(result) for result in found.exports]
        body += [_parity_html_section(report) for report in found.parity]
    if found.benches:
        toc.append("benchmarks")
        body.append('<h2 id="benchmarks">Benchmarks</h2>')
        points = [point for report in found.benches for point in _latency_points(report)]
        chart = latency_chart_html(points, several_models=len({model for model, *_ in points}) > 1)
        body.append(chart and "<h3>Latency per target and thread count (medians)</h3>" + chart)
        body += [_bench_html_section(report) for report in found.benches]
    if found.analyses:
        toc.append("analysis")
        body.append('<h2 id="analysis">Analysis: FLOPs, memory access and the ShuffleNetV2 guidelines</h2>')
        body += [_analysis_html_section(a) for a in found.analyses]
    if found.guidelines:
        toc.append("guidelines")
        body += [guidelines_html(g) for g in found.guidelines]
    if found.layer_errors:
        toc.append("per-layer error")
        body.append('<h2 id="layer-errors">Per-layer error (int8)</h2>')
        body += [_layer_error_chart(item) for item in found.layer_errors]
    if found.skipped:
        body.append("<h2>Files not included</h2><ul>"
                    + "".join(f"<li>{html.escape(s)}</li>" for s in found.skipped) + "</ul>")
    if not toc:
        body.append("<p>No edgekit results (export, parity, bench, analysis, guidelines JSON) in this directory.</p>")
    body.insert(1, "<p>Sections: " + html.escape(", ".join(toc) or "none") + "</p>")
    return page(f"edgekit report: {found.path}", "\n".join(body)).replace(
        "table{border-collapse:collapse}", "table{border-collapse:collapse;margin:0.5em 0;font-size:13px}")


def write_run_report(path: str | Path, output: str | Path | None = None) -> dict[str, Any]:
    """Render everything in run directory ``path`` to ``report.html`` and ``report.md`` (in ``output``,
    default ``path``), each written atomically. Out: ``{"html", "markdown"}`` -> path, and ``"skipped"``:
    one line per file left out of the report, with why. Raises ``OutputError``."""
    from edgekit.errors import OutputError
    from edgekit.fileio import ensure_writable_dir, staged_files

    found = collect_run_dir(path)
    out = Path(output) if output is not None else Path(path)
    try:
        ensure_writable_dir(out)
        paths = {"html": out / "report.html", "markdown": out / "report.md"}
        with staged_files() as staged:  # both appear whole, or neither changes
            staged.write_text(paths["html"], run_dir_html(found))
            staged.write_text(paths["markdown"], run_dir_markdown(found))
            staged.commit()
    except OSError as exc:
        raise OutputError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    paths["skipped"] = list(found.skipped)
    return paths


# --- per-layer int8 error (edgekit check --per-layer) ----------------------------------------------------


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
