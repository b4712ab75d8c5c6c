"""Rendering of benchmark reports: terminal table, Markdown, self-contained HTML with SVG plots."""

from __future__ import annotations

from edgekit.android_bench.results import (
    BenchConfig,
    BenchReport,
    BenchRun,
    DeviceFacts,
    LatencyStats,
    OpProfileRow,
)
from edgekit.report import bench_html, bench_markdown, line_chart_svg, render_bench


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
