"""Rendering of benchmark reports: terminal table, Markdown, self-contained HTML with SVG plots."""

from __future__ import annotations

import json
import re

from conftest import recorded_output

from edgekit.android_bench.parsers import parse_benchmark_model_output
from edgekit.android_bench.remote_target import parse_probe
from edgekit.android_bench.results import (
    BenchConfig,
    BenchReport,
    BenchRun,
    CoreInfo,
    DeviceFacts,
    LatencyStats,
    OpProfileRow,
)
from edgekit.report import (
    NOISY_SPREAD,
    bench_device_rows,
    bench_html,
    bench_markdown,
    is_noisy,
    latency_noise,
    latency_spread,
    line_chart_svg,
    render_bench,
    to_jsonable,
    write_run_report,
)


def _run(accel, threads, mean, emulated=False, status="ok", ops=()):
    return BenchRun(
        device=DeviceFacts(target="adb:EMU", abi="arm64-v8a", emulated=emulated), model_file="m.tflite",
        model_sha256="0" * 64, tool="benchmark_model", tool_version="2.16", status=status,
        config=BenchConfig(threads=threads, accelerator=accel, runs=10, min_secs=1, warmup_runs=2),
        latency=LatencyStats(count=10, mean_ms=mean, median_ms=mean) if status != "failed" else None,
        op_profile=[OpProfileRow(i, t, f"n{i}", ms) for i, (t, ms) in enumerate(ops)],
        error="adb:EMU: run: device disconnected" if status == "failed" else None,
    )


def test_bench_views():
    report = BenchReport(runs=[
        _run("xnnpack", 1, 12.5, emulated=True, ops=[("CONV_2D", 7.0), ("ADD", 1.0), ("CONV_2D", 3.0)]),
        _run("xnnpack", 2, 7.25, emulated=True), _run("cpu", 1, 20.0, emulated=True),
        _run("cpu", 2, 0.0, emulated=True, status="failed"),
    ], model_file="/x/m.tflite", notes=["adb:EMU: timings from an emulated CPU (qemu) are not performance figures"])
    text = render_bench(report)
    assert "adb:EMU (emulated)  xnnpack        1  ok" in text and "device disconnected" in text
    md = bench_markdown(report)
    assert "| adb:EMU (emulated) | cpu | 2 | failed |" in md
    assert "| CONV_2D | 2 | 10.0 | 90.9 |" in md  # summed from the run-order rows
    page = bench_html(report)
    assert page.count("<polyline") == 2  # one line per accelerator (the failed run has no latency)
    assert "Emulated CPU" in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_line_chart_empty_and_single_point():
    assert line_chart_svg({}) == "<p>(no data)</p>"
    svg = line_chart_svg({"host cpu": [(1.0, 3.0)]}, x_label="threads")
    assert "<circle" in svg and ">threads<" in svg


# --- the median with its spread, noisy configurations, cores ------------------------------------------

PHONE = DeviceFacts(target="adb:PHONE", abi="arm64-v8a",
                    cores=[CoreInfo(i, 1_800_000 if i < 4 else 2_800_000) for i in range(8)])


def _measured(accel, threads, median, p10, p90, *, mean=None, count=50, device=PHONE, **more):
    """A run whose latency is known exactly: the mean is far from the median unless given."""
    latency = LatencyStats(count=count, mean_ms=mean if mean is not None else 3 * median, median_ms=median,
                           p10_ms=p10, p90_ms=p90, **more)
    return BenchRun(device=device, model_file="m.tflite", model_sha256="0" * 64, tool="benchmark_model",
                    tool_version="2.16", config=BenchConfig(threads, accel, 50, 1.0, 5), latency=latency)


def _report(*runs):
    return BenchReport(runs=list(runs), model_file="/x/m.tflite")


def test_median_is_the_headline_and_only_the_wide_spread_is_called_noisy():
    report = _report(_measured("xnnpack", 1, 10.0, 9.5, 11.5),  # spread 20% of the median
                     _measured("xnnpack", 2, 6.0, 5.5, 8.0),  # spread 42%
                     _measured("xnnpack", 4, 8.0, 7.0, 9.0))  # spread exactly 25%: not above the limit
    text = render_bench(report)
    assert "median ms (p10-p90)" in text and "mean ms" in text
    rows = {line.split()[2]: line for line in text.splitlines() if line.startswith("adb:PHONE  ")}
    assert "10.0 (9.5-11.5)" in rows["1"] and "20%" in rows["1"] and "noisy" not in rows["1"]
    assert "6 (5.5-8)" in rows["2"] and "42% noisy" in rows["2"]
    assert "25%" in rows["4"] and "noisy" not in rows["4"]
    notes = [line for line in text.splitlines() if line.startswith("noisy: ")]
    assert notes == ["noisy: adb:PHONE xnnpack/2 thread(s): p10-p90 spans 42% of the median (noisy above 25%); "
                     "close other apps, raise --min-secs or add --cooldown"]
    assert "fastest: adb:PHONE xnnpack/2 thread(s): median 6 ms, p10-p90 5.5-8 ms (noisy)" in text
    md = bench_markdown(report)
    assert "| adb:PHONE | xnnpack | 2 | ok | 50 | 6 (5.5-8) | 42% noisy | 18.0 |" in md
    assert md.count("- noisy: ") == 1


def test_the_chart_plots_medians_with_their_spread_not_means():
    report = _report(_measured("xnnpack", 1, 10.0, 9.5, 11.5), _measured("xnnpack", 2, 6.0, 5.5, 8.0),
                     _measured("cpu", 1, 20.0, 19.0, 21.0))
    page = bench_html(report)
    assert "Median latency vs threads" in page and ">median latency (ms)<" in page and "Mean latency" not in page
    points = re.findall(r"<circle[^>]*><title>([^<]*)</title>", page)
    assert points == ["adb:PHONE xnnpack/1 thread(s), median: 10.0 ms", "adb:PHONE xnnpack/2 thread(s), median: 6 ms",
                      "adb:PHONE cpu/1 thread(s), median: 20.0 ms"]  # the means (30, 18, 60) are nowhere
    bars = re.findall(r'<g stroke="[^"]*" stroke-opacity[^>]*><title>([^<]*)</title>', page)
    assert bars == ["adb:PHONE xnnpack/1 thread(s): p10-p90 9.5-11.5 ms",
                    "adb:PHONE xnnpack/2 thread(s): p10-p90 5.5-8 ms (noisy)",
                    "adb:PHONE cpu/1 thread(s): p10-p90 19.0-21.0 ms"]
    assert "bars span p10-p90" in page and "run off the top" not in page


def test_a_bar_far_above_every_median_runs_off_the_top_without_stretching_the_axis():
    page = bench_html(_report(_measured("xnnpack", 1, 10.0, 9.0, 11.0), _measured("xnnpack", 2, 6.0, 5.0, 500.0)))
    assert "1 bar(s) reaching past 3x the slowest median run off the top" in page
    assert "p10-p90 5-500.0 ms (noisy)" in page  # the tooltip keeps the true value
    axis_labels = re.findall(r'<text x="58" y="[\d.]+" text-anchor="end">([^<]*)</text>', page)
    assert float(axis_labels[-1]) <= 20  # scaled to the medians and the bars that fit, not to 500 ms


def test_what_each_tool_reports_is_named_and_judged():
    # benchmark_model prints p5/median/p95 (a recorded output): the spread is named and judged by its own limit
    quiet = parse_benchmark_model_output(recorded_output("benchmark_model_logcat_p5_median_p95.txt")).latency
    noisy = parse_benchmark_model_output(recorded_output("benchmark_model_android_xnnpack_p5_median_p95.txt")).latency
    assert latency_noise(quiet)[0] == "p5-p95" and 0.25 < latency_noise(quiet)[1] < NOISY_SPREAD["p95"]
    assert not is_noisy(quiet) and is_noisy(noisy)
    # the device runner and onnxruntime_perf_test: median, p90 and min
    runner = LatencyStats(count=50, mean_ms=5.0, median_ms=4.0, p90_ms=4.5, min_ms=3.9)
    assert latency_spread(runner) == ("min", 3.9, "p90", 4.5) and not is_noisy(runner)
    # too few runs, or no median (old tools): shown, never judged
    assert latency_noise(LatencyStats(count=5, mean_ms=5.0, median_ms=4.0, p10_ms=1.0, p90_ms=9.0)) is None
    old = LatencyStats(count=50, mean_ms=5.0, min_ms=4.0, max_ms=9.0, std_ms=1.0)
    assert latency_noise(old) is None and not is_noisy(old)
    report = _report(_measured("cpu", 1, 4.0, None, 4.5, min_ms=3.9),
                     BenchRun(device=PHONE, model_file="m.tflite", model_sha256="0" * 64, tool="benchmark_model",
                              tool_version="1.12", config=BenchConfig(2, "cpu", 50, 1.0, 5), latency=old))
    md = bench_markdown(report)
    assert "| 4 (min 3.9-p90 4.5) |" in md
    assert "| adb:PHONE | cpu | 2 | ok | 50 | - | - | 5 |" in md  # no median: none is made up; the mean stays
    assert "<title>adb:PHONE cpu/2 thread(s), mean (no median reported): 5 ms</title>" in bench_html(report)


def test_cores_column_shows_what_the_device_reported():
    probe = parse_probe("".join(f"cpu\t{i}\t{1_800_000 if i < 4 else 2_800_000}\n" for i in range(8)))
    phone = DeviceFacts(target="adb:PHONE", cores=probe["cores"])
    vm = DeviceFacts(target="host", cores=[CoreInfo(0, clock_khz=2_596_126), CoreInfo(1, clock_khz=2_596_126)])
    board = DeviceFacts(target="ssh:pi@board", cores=[CoreInfo(0), CoreInfo(1), CoreInfo(2), CoreInfo(3)])
    report = _report(*(_measured("cpu", 1, 4.0, 3.9, 4.1, device=d) for d in (phone, vm, board)))
    headers, rows = bench_device_rows(report)
    cores = {row[0]: row[headers.index("cores")] for row in rows}
    assert cores == {"adb:PHONE": "8 (4x2.8 + 4x1.8 GHz)", "host": "2 (2.6 GHz clock)", "ssh:pi@board": "4"}
    assert "| adb:PHONE | - | - | - | - | 8 (4x2.8 + 4x1.8 GHz) |" in bench_markdown(report)
    assert "cores 2 (2.6 GHz clock);" in render_bench(report)
    assert "<td>8 (4x2.8 + 4x1.8 GHz)</td>" in bench_html(report)


def test_a_bench_json_from_before_p10_and_clock_still_renders(tmp_path):
    run = _measured("xnnpack", 2, 6.0, 5.5, 8.0, min_ms=5.2)
    run.device = DeviceFacts(target="host", cores=[CoreInfo(0, clock_khz=2_000_000)])
    data = to_jsonable(_report(run))
    del data["runs"][0]["latency"]["p10_ms"], data["runs"][0]["device"]["cores"][0]["clock_khz"]
    (tmp_path / "bench.json").write_text(json.dumps(data))
    paths = write_run_report(tmp_path)
    markdown, page = paths["markdown"].read_text(), paths["html"].read_text()
    assert not paths["skipped"]
    assert "| 6 (min 5.2-p90 8) | min-p90 47% noisy |" in markdown and "| host | - | - | - | - | 1 |" in markdown
    assert "noisy: host xnnpack/2 thread(s): min-p90 spans 47% of the median" in markdown
    assert "Latency per target and thread count (medians)" in page and "median: 6 ms</title>" in page
