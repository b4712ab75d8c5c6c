"""Benchmarks (``edgekit bench``) and attached devices (``edgekit devices``): tables, the latency chart, noise."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from edgekit.op_profile import summarize_op_types
from edgekit.report.charts import bar_chart_svg, line_chart_svg
from edgekit.report.tables import _cell, html_table, markdown_table, page, table

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
    return summarize_op_types(run.op_profile)


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
