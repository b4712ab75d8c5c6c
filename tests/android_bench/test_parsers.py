"""The output parsers, on outputs recorded from real tool runs of several versions (see outputs/)."""

from __future__ import annotations

import json

import pytest
from conftest import recorded_output

from edgekit.android_bench.parsers import (
    UnparsableOutputError,
    output_tail,
    parse_benchmark_model_output,
    parse_ort_profile,
    parse_perf_test_output,
    parse_runner_output,
    summarize_op_types,
)
from edgekit.android_bench.results import OpProfileRow
from edgekit.errors import EdgekitError


def test_oldest_format_no_stats_line():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_model_r1.12_no_stats.txt"))
    lat = parsed.latency
    assert lat.count == 50
    assert lat.mean_ms == pytest.approx(137.722)
    assert lat.warmup_ms == pytest.approx(146.161)
    assert lat.init_ms == pytest.approx(4.452)
    assert lat.first_ms == pytest.approx(146.161)  # the single warm-up run is the first inference
    assert (lat.min_ms, lat.max_ms, lat.std_ms) == pytest.approx((137.079, 143.416, 0.896))
    assert lat.median_ms is None and parsed.memory is None


def test_2019_format_with_duration_flags():
    lat = parse_benchmark_model_output(recorded_output("benchmark_model_2019_mobilenet_v1_quant.txt")).latency
    assert (lat.count, lat.mean_ms, lat.init_ms) == (50, pytest.approx(747.733), pytest.approx(21.039))


def test_old_inference_line_and_profiler_timings_only():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_model_tf_readme_inference_summary.txt"))
    assert parsed.latency.mean_ms == pytest.approx(79.7609)  # from "Inference: 79760.9", not avg=79732
    assert parsed.latency.count == 50  # only the profiler's "Timings (microseconds): count=50" line
    assert [(r.op_type, r.count) for r in parsed.op_type_summary][:2] == [("CONV_2D", 15), ("DEPTHWISE_CONV_2D", 13)]
    assert parsed.op_type_summary[0].avg_ms == pytest.approx(1.406)


def test_v24_peak_memory_wording():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_model_v2.4_android_yolov5_cpu.txt"))
    lat = parsed.latency
    assert (lat.init_ms, lat.first_ms, lat.warmup_ms, lat.mean_ms) == pytest.approx((16.242, 360.262, 304.586,
                                                                                     249.684))
    assert (parsed.memory.init_mb, parsed.memory.overall_mb) == pytest.approx((4.92969, 138.809))


def test_logcat_prefixed_p5_median_p95():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_model_logcat_p5_median_p95.txt"))
    lat = parsed.latency
    assert lat.count == 25  # the regular runs, not the count=3 warm-up line
    assert lat.median_ms == pytest.approx(141.253)
    assert (lat.min_ms, lat.max_ms, lat.std_ms) == pytest.approx((140.071, 195.121, 13.583))
    assert lat.mean_ms == pytest.approx(145.528)
    assert (parsed.memory.init_mb, parsed.memory.overall_mb) == pytest.approx((54.2852, 73.4102))


def test_v28_op_profile_skips_initialisation_tables():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_model_v2.8_riscv64_op_profile.txt"))
    assert parsed.latency.mean_ms == pytest.approx(2950.34)  # "2.95034e+06" us
    assert parsed.latency.warmup_ms == pytest.approx(3512.39)
    assert len(parsed.op_profile) == 31
    assert all(r.op_type != "AllocateTensors" for r in parsed.op_profile)
    first = parsed.op_profile[0]
    assert (first.index, first.op_type, first.name) == (0, "CONV_2D", "MobilenetV1/MobilenetV1/Conv2d_0/Relu6")
    assert first.avg_ms == pytest.approx(60.957) and first.percent == pytest.approx(2.066)
    assert parsed.op_profile[-1].op_type == "SOFTMAX"
    assert len(parsed.top_ops) == 10 and parsed.top_ops[0].avg_ms == pytest.approx(277.374)
    assert [r.op_type for r in parsed.op_type_summary] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "SOFTMAX", "SQUEEZE"]
    assert parsed.op_type_summary[0].count == 15
    # The run-order table agrees with the tool's own per-type summary.
    ours = {r.op_type: r for r in summarize_op_types(parsed.op_profile)}
    assert ours["CONV_2D"].avg_ms == pytest.approx(2651.853, abs=0.01)


def test_failed_run_error_quotes_the_tail():
    with pytest.raises(UnparsableOutputError) as info:
        parse_benchmark_model_output(recorded_output("benchmark_model_v2.4_android_nnapi_failed.txt"))
    message = str(info.value)
    assert isinstance(info.value, EdgekitError)
    assert "\n" not in message
    assert "Benchmarking failed." in message and "Failed to apply NNAPI delegate" in message


@pytest.mark.parametrize("text", ["", "Segmentation fault\n", "STARTING!\nNum threads: [4]\n"])
def test_unknown_output_is_an_error_not_zero(text):
    with pytest.raises(UnparsableOutputError, match="benchmark_model output has no"):
        parse_benchmark_model_output(text)


def test_truncated_output_is_an_error():
    full = recorded_output("benchmark_model_v2.8_riscv64_op_profile.txt")
    cut = full[: full.index("Running benchmark for at least 50")]  # died during the warm-up
    with pytest.raises(UnparsableOutputError, match="count=1 curr=3512391"):
        parse_benchmark_model_output(cut)


def test_output_tail_is_one_short_line():
    tail = output_tail("a\n" * 500 + "last line\n")
    assert tail.endswith("last line") and "\n" not in tail and len(tail) <= 203


def test_perf_test_2020_no_space_after_colon():
    lat = parse_perf_test_output(recorded_output("perf_test_2020_session_creation.txt")).latency
    assert (lat.count, lat.mean_ms, lat.init_ms) == (1, pytest.approx(734.606), pytest.approx(1841.49))
    assert lat.median_ms is None


def test_perf_test_131_memory():
    parsed = parse_perf_test_output(recorded_output("perf_test_1.3.1_acl_android.txt"))
    assert parsed.latency.mean_ms == pytest.approx(144.871) and parsed.latency.count == 10
    assert parsed.memory.overall_mb == pytest.approx(158171136 / 2**20)


def test_perf_test_latency_is_sec_wording():
    lat = parse_perf_test_output(recorded_output("perf_test_2023_latency_is_sec.txt")).latency
    assert (lat.count, lat.mean_ms) == (1000, pytest.approx(58.8053))
    assert (lat.median_ms, lat.p90_ms, lat.min_ms, lat.max_ms) == pytest.approx((58.7108, 59.9845, 55.9777,
                                                                                 62.3472))


def test_perf_test_average_total_and_p50_seconds():
    lat = parse_perf_test_output(recorded_output("perf_test_2025_sme2_total.txt")).latency
    assert lat.mean_ms == pytest.approx(98.961997)
    assert (lat.first_ms, lat.init_ms, lat.median_ms) == pytest.approx((196.0, 217.932, 99.5086))
    assert lat.count == 5


def test_perf_test_without_average_is_an_error():
    text = "Session creation time cost: 0.2 s\nterminate called after throwing an instance of 'Ort::Exception'\n"
    with pytest.raises(UnparsableOutputError, match="Ort::Exception"):
        parse_perf_test_output(text)


def _trace(runs: int) -> str:
    events, ts = [], 0
    for _ in range(runs):
        events.append({"cat": "Session", "name": "model_run", "ts": ts, "dur": 30})
        for node, op, dur in (("conv1", "Conv", 10), ("relu1", "Relu", 2), ("conv2", "Conv", 6)):
            events.append({"cat": "Node", "name": f"{node}_fence_before", "ts": ts + 1, "dur": 0,
                           "args": {"op_name": op}})
            events.append({"cat": "Node", "name": f"{node}_kernel_time", "ts": ts + 1, "dur": dur * 1000,
                           "args": {"op_name": op}})
        ts += 100
    return json.dumps(events)


def test_ort_profile_rows_and_summary():
    rows, summary = parse_ort_profile(_trace(4), skip_runs=1)
    assert [(r.name, r.op_type) for r in rows] == [("conv1", "Conv"), ("relu1", "Relu"), ("conv2", "Conv")]
    assert [r.avg_ms for r in rows] == pytest.approx([10.0, 2.0, 6.0])
    assert summary[0].op_type == "Conv" and summary[0].count == 2 and summary[0].avg_ms == pytest.approx(16.0)
    assert sum(r.percent for r in rows) == pytest.approx(100.0)


@pytest.mark.parametrize("text", ["not json", "[]", json.dumps([{"cat": "Session", "name": "model_run"}])])
def test_ort_profile_garbage_is_an_error(text):
    with pytest.raises(UnparsableOutputError):
        parse_ort_profile(text)


def test_runner_output_roundtrip_and_errors():
    doc = {"tool": "edgekit-runner", "tool_version": "1",
           "latency": {"count": 3, "mean_ms": 2.0, "median_ms": 2.0},
           "memory": {"init_mb": 1.0, "overall_mb": 50.0},
           "op_profile": [{"index": 0, "op_type": "Conv", "name": "c", "avg_ms": 1.0, "percent": 100.0}],
           "op_type_summary": []}
    parsed, document = parse_runner_output("noise on stdout\n" + json.dumps(doc) + "\n")
    assert parsed.latency.count == 3 and parsed.memory.overall_mb == 50.0
    assert parsed.op_profile == [OpProfileRow(0, "Conv", "c", 1.0, 100.0)]
    assert document["tool_version"] == "1"
    with pytest.raises(UnparsableOutputError, match="ModuleNotFoundError"):
        parse_runner_output(json.dumps({"tool": "edgekit-runner", "error": "ModuleNotFoundError: numpy"}))
    with pytest.raises(UnparsableOutputError, match="Illegal instruction"):
        parse_runner_output("Illegal instruction (core dumped)\n")
