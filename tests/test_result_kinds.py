"""Every result JSON says what it is (``kind``, ``version``); ``edgekit report`` renders a file by it, lists a
kind it does not know or a version newer than it reads as skipped with one line, and still sorts files written
before results carried a kind by their keys."""

from __future__ import annotations

import json

import pytest

from edgekit.analysis.results import Analysis
from edgekit.android_bench.adb_target import DeviceListing
from edgekit.android_bench.results import BenchConfig, BenchReport, BenchRun, DeviceFacts, LatencyStats
from edgekit.check import THRESHOLDS, OutputParity, ParityReport
from edgekit.evaluate import EvalReport
from edgekit.export.result import ExportResult
from edgekit.guidelines.results import GuidelineReport
from edgekit.models.registry import ModelInfo
from edgekit.per_layer import LayerError, PerLayerReport
from edgekit.report import collect_run_dir, to_json, write_run_report
from edgekit.report.rundir import KINDS
from edgekit.report.serialize import result_kind


def _parity() -> ParityReport:
    logits = OutputParity(name="logits", shape=(1, 10), max_abs=1e-6, mean_abs=1e-7, ref_max_abs=3.0, cosine=1.0,
                          sqnr_db=120.0, top1_agreement=1.0, top5_agreement=1.0)
    return ParityReport(file="m.onnx", reference="tiny", runtime="onnxruntime", precision="fp32", samples=4,
                        data="bundled", skipped_images=0, outputs=[logits], thresholds=THRESHOLDS["fp32"], passed=True)


RESULTS = {
    "export": ExportResult(
        model="tiny", format="onnx", precision="fp32", path="out/m.onnx", report_path="out/m.json", file_size=1000,
        file_sha256="0" * 64, input_shape=(1, 3, 8, 8), weights_source="init", weights_sha256="1" * 64, opset=17,
        shuffle_lowering="none", versions={"onnx": "1"}, op_histogram={"Conv": 2}, shuffles=[], passes=[],
        parity=_parity()),
    "parity": _parity(),
    "bench": BenchReport(runs=[BenchRun(
        device=DeviceFacts(target="host"), model_file="m.onnx", model_sha256="0" * 64, tool="host", tool_version="1",
        config=BenchConfig(threads=1, accelerator="cpu", runs=10, min_secs=0.0, warmup_runs=1),
        latency=LatencyStats(count=10, mean_ms=1.5, median_ms=1.4))], model_file="m.onnx"),
    "analysis": Analysis(source="m.onnx", source_kind="onnx", input_shapes=[[1, 3, 8, 8]], params=10, mult_adds=100,
                         memory_access=50, intensity=2.0, layers=[], op_kinds=[]),
    "guidelines": GuidelineReport(target="host", device=None, spatial=56, blocks=2, threads=1, accelerator=None,
                                  rounds=1, tables=[]),
    "per_layer": PerLayerReport(file="m.int8.onnx", reference="tiny", samples=4, data="bundled", mode="QDQ",
                                layers=[LayerError(index=0, tensor="x", op="Conv", node="conv1", sqnr_db=30.0,
                                                   cosine=0.999, max_abs=0.01, jump_db=None)]),
    "eval": EvalReport(data="digits", classes=["0", "1"], images=2, results=[]),
    "device": DeviceListing(serial="emulator-5554", state="device"),
    "model": ModelInfo(name="tiny", family="test", width=None, params=10, macs=100, input_shape=(1, 3, 8, 8),
                       description="a test model", pretrained_url=None),
}
#: Where ``collect_run_dir`` puts each rendered kind, and the heading of its section in report.md.
LISTS = {"export": "exports", "parity": "parity", "bench": "benches", "analysis": "analyses",
         "guidelines": "guidelines", "per_layer": "layer_errors"}
HEADINGS = {"export": "## Export: export.json", "parity": "## Parity: parity.json",
            "bench": "## Benchmark (bench.json)", "analysis": "## Analysis: m.onnx",
            "guidelines": "## ShuffleNetV2 guideline experiments", "per_layer": "## Per-layer error: per_layer.json"}


def test_every_result_class_declares_a_kind_the_report_knows():
    assert sorted(RESULTS) == sorted(KINDS)
    for kind, result in RESULTS.items():
        assert result_kind(result) == (kind, KINDS[kind][0]) == result_kind(type(result))


@pytest.mark.parametrize("kind", RESULTS)
def test_each_kind_round_trips_through_a_run_directory(tmp_path, kind):
    text = to_json(RESULTS[kind])
    data = json.loads(text)
    assert list(data)[:2] == ["kind", "version"] and (data["kind"], data["version"]) == (kind, 1)
    (tmp_path / f"{kind}.json").write_text(text)
    found = collect_run_dir(tmp_path)
    if kind in LISTS:
        assert found.skipped == []
        (record,) = getattr(found, LISTS[kind])
        assert {k: v for k, v in record.items() if k != "_file"} == data
        paths = write_run_report(tmp_path)
        assert paths["skipped"] == [] and HEADINGS[kind] in paths["markdown"].read_text()
    else:
        assert found.skipped == [f"{kind}.json: {kind} result; `edgekit report` has no section for it"]


def test_a_nested_result_carries_its_kind_too():
    data = json.loads(to_json(RESULTS["export"]))
    assert (data["parity"]["kind"], data["parity"]["version"]) == ("parity", 1)
    assert "kind" not in data["parity"]["outputs"][0]  # parts of a result are not results


def test_unknown_kinds_and_newer_versions_are_skipped_with_one_line_each(tmp_path):
    newer = json.loads(to_json(RESULTS["bench"])) | {"version": 2}
    files = {"telemetry.json": {"kind": "telemetry", "version": 1, "runs": [], "model_file": "m.onnx"},
             "newer.json": newer, "text_version.json": {"kind": "parity", "version": "one"}}
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    (tmp_path / "good.json").write_text(to_json(RESULTS["bench"]))
    found = collect_run_dir(tmp_path)
    assert len(found.benches) == 1 and found.benches[0]._file == "good.json"
    assert sorted(found.skipped) == [
        "newer.json: bench result version 2, newer than this edgekit reads (1); upgrade edgekit",
        "telemetry.json: a result of kind 'telemetry', which this edgekit does not know (known: "
        + ", ".join(KINDS) + ")",
        'text_version.json: parity result with version "one", not a positive whole number',
    ]
    assert not any("\n" in line for line in found.skipped)


def test_results_written_before_kinds_still_render_by_their_keys(tmp_path):
    for kind in ("export", "parity", "bench", "per_layer"):
        old = json.loads(to_json(RESULTS[kind]))
        del old["kind"], old["version"]
        (tmp_path / f"{kind}.json").write_text(json.dumps(old))
    found = collect_run_dir(tmp_path)
    assert found.skipped == []
    assert [len(getattr(found, LISTS[k])) for k in ("export", "parity", "bench", "per_layer")] == [1, 1, 1, 1]
