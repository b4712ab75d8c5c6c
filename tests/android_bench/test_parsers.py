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


def test_info_prefixed_android_xnnpack_run_with_p5_median_p95():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_model_android_xnnpack_p5_median_p95.txt"))
    lat = parsed.latency
    assert lat.count == 50  # the regular runs, not the one-run warm-up "count=1 curr=670083 p5=..." line
    assert (lat.mean_ms, lat.init_ms, lat.first_ms, lat.warmup_ms) == pytest.approx((699.438, 102.32, 670.083,
                                                                                     670.083))
    assert (lat.p5_ms, lat.median_ms, lat.p95_ms) == pytest.approx((502.674, 576.856, 1373.207))
    assert (lat.min_ms, lat.max_ms, lat.std_ms) == pytest.approx((502.355, 2270.688, 325.425))
    assert (parsed.memory.init_mb, parsed.memory.overall_mb) == pytest.approx((98.0977, 99.2031))


def test_info_prefixed_android_gpu_and_nnapi_delegates():
    lat = parse_benchmark_model_output(recorded_output("benchmark_model_android_gpu_nnapi_delegates.txt")).latency
    assert (lat.count, lat.mean_ms, lat.init_ms) == (50, pytest.approx(309.35), pytest.approx(5664.363))
    assert (lat.first_ms, lat.warmup_ms) == pytest.approx((328.14, 319.036))
    assert (lat.p5_ms, lat.median_ms, lat.p95_ms) == pytest.approx((306.372, 307.968, 315.711))


def test_indented_info_lines_with_exponents():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_model_v2.18_linux_indented_exponents.txt"))
    lat = parsed.latency
    assert lat.mean_ms == pytest.approx(1240.27)  # "Inference (avg): 1.24027e+06" us
    assert lat.warmup_ms == pytest.approx(1357.6)  # "Warmup (avg): 1.3576e+06" us
    assert (lat.count, lat.median_ms, lat.init_ms) == (50, pytest.approx(1239.807), pytest.approx(5.579))
    assert (parsed.memory.init_mb, parsed.memory.overall_mb) == pytest.approx((6.36328, 109.832))


def test_litert_run_prefers_the_us_count_lines_over_its_ms_summary():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_litert_model_android_sme2_op_profile.txt"))
    lat = parsed.latency
    # The regular runs' count=2112 line, not the profiler's "Timings (microseconds): count=3166" line.
    assert (lat.count, lat.mean_ms, lat.std_ms) == (2112, pytest.approx(0.464545), pytest.approx(0.013))
    assert (lat.p5_ms, lat.median_ms, lat.p95_ms) == pytest.approx((0.460, 0.462, 0.478))
    assert (lat.min_ms, lat.max_ms) == pytest.approx((0.442, 0.979))
    assert lat.init_ms == pytest.approx(4.478)  # "Initialized session in 4.478ms", not "Model initialization: 4.48 ms"
    assert (lat.first_ms, lat.warmup_ms) == pytest.approx((1.033, 0.465319))  # the warm-up count= line
    assert (parsed.memory.init_mb, parsed.memory.overall_mb) == pytest.approx((8.94, 11.51))  # LiteRT's summary


def test_litert_op_tables_without_start_column():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_litert_model_android_sme2_op_profile.txt"))
    assert [r.op_type for r in parsed.op_profile] == [
        "LiteRT::Run[buffer registration]", "AllocateTensors", "Static Reshape (NC)",
        "Fully Connected (NC, PF32) GEMM", "LiteRT::Run[Buffer sync]"]
    gemm = parsed.op_profile[3]
    assert (gemm.index, gemm.name) == (3, "Delegate/Fully Connected (NC, PF32) GEMM")
    assert (gemm.avg_ms, gemm.percent) == pytest.approx((0.382, 92.948))  # [avg ms] and [%], not [first]
    assert [r.op_type for r in parsed.top_ops][:2] == ["Fully Connected (NC, PF32) GEMM", "AllocateTensors"]
    first = parsed.op_type_summary[0]
    assert (first.op_type, first.count, first.avg_ms, first.percent) == (
        "Fully Connected (NC, PF32) GEMM", 1, pytest.approx(0.382), pytest.approx(93.171))
    assert len(parsed.op_type_summary) == 5


def test_litert_summary_alone_gives_the_latency():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_litert_model_windows_npu_summary_only.txt"))
    lat = parsed.latency
    assert (lat.count, lat.mean_ms) == (2166, pytest.approx(0.46))
    assert (lat.min_ms, lat.max_ms, lat.std_ms) == pytest.approx((0.35, 0.74, 0.03))
    assert (lat.init_ms, lat.first_ms, lat.warmup_ms) == pytest.approx((586.76, 4.44, 0.52))
    assert lat.median_ms is None and lat.p5_ms is None and parsed.memory is None


def test_litert_run_between_absl_log_lines():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_litert_model_linux_glog_lines.txt"))
    lat = parsed.latency
    assert (lat.count, lat.mean_ms, lat.init_ms) == (1054, pytest.approx(0.947132), pytest.approx(5.757))
    assert (lat.p5_ms, lat.median_ms, lat.p95_ms) == pytest.approx((0.915, 0.942, 0.991))
    assert (parsed.memory.init_mb, parsed.memory.overall_mb) == pytest.approx((4.06, 7.07))


def test_space_aligned_op_tables_with_multi_word_node_types():
    parsed = parse_benchmark_model_output(recorded_output("benchmark_model_x86_info_op_profile_tail.txt"))
    assert (parsed.latency.count, parsed.latency.mean_ms) == (64, pytest.approx(15.3092))  # profiler's Timings line
    top = parsed.top_ops
    assert len(top) == 10 and parsed.op_profile == []
    assert (top[0].op_type, top[0].avg_ms, top[0].percent) == ("TFLite_Detection_PostProcess", pytest.approx(3.653),
                                                               pytest.approx(23.862))
    assert top[0].name == ("StatefulPartitionedCall:3, StatefulPartitionedCall:2, StatefulPartitionedCall:1, "
                           "StatefulPartitionedCall:0")
    assert (top[4].op_type, top[4].name, top[4].avg_ms) == (
        "Convolution (NHWC, QC8) IGEMM", "Delegate/Convolution (NHWC, QC8) IGEMM", pytest.approx(0.407))
    assert top[-1].name == "tfl.quantize"
    summary = parsed.op_type_summary
    assert [(r.op_type, r.count) for r in summary[:2]] == [("Convolution (NHWC, QC8) GEMM", 62),
                                                          ("Convolution (NHWC, QC8) DWConv", 51)]
    assert (summary[-1].op_type, summary[-1].avg_ms, summary[-1].percent) == (
        "Max Pooling (NHWC, S8)", pytest.approx(0.018), pytest.approx(0.118))
    assert len(summary) == 11


@pytest.mark.parametrize("prefix", ["I tflite  : ", "07-14 13:14:52.097 22838 22838 I tflite  : ", "   ",
                                    "I0000 00:00:1758455104.504065   62590 benchmark_tflite_model.cc:1] "])
@pytest.mark.parametrize("name", ["benchmark_model_v2.8_riscv64_op_profile.txt",
                                  "benchmark_litert_model_android_sme2_op_profile.txt"])
def test_any_log_prefix_on_every_line_parses_the_same(prefix, name):
    text = recorded_output(name)
    prefixed = "".join(prefix + line for line in text.splitlines(keepends=True))
    assert parse_benchmark_model_output(prefixed) == parse_benchmark_model_output(text)


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
