"""`edgekit report DIR`: one self-contained HTML page and Markdown from everything a run wrote."""

import json
import re

import torch
from click.testing import CliRunner
from torch import nn

from edgekit.analysis import analyze
from edgekit.android_bench.results import (
    BenchConfig,
    BenchReport,
    BenchRun,
    CoreInfo,
    DeviceFacts,
    LatencyStats,
    OpProfileRow,
)
from edgekit.cli import main
from edgekit.guidelines.results import DirectionCheck, GuidelineCell, GuidelineReport, GuidelineRow, GuidelineTable
from edgekit.report import collect_run_dir, to_json, write_run_report


def tiny_onnx(path):
    from edgekit.export.onnx_export import torch_to_onnx

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8)).eval()
    path.write_bytes(torch_to_onnx(model, (1, 3, 8, 8)).SerializeToString())
    return path


def bench_report(model_file, layer_names):
    device = DeviceFacts(target="host", soc="test cpu", abi="x86_64", cores=[CoreInfo(0), CoreInfo(1)])
    runs = []
    for threads, ms in ((1, 2.0), (2, 1.2)):
        run = BenchRun(device=device, model_file=str(model_file), model_sha256="0" * 64, tool="host",
                       tool_version="onnxruntime 1.x", config=BenchConfig(threads, "cpu", 10, 0.1, 1),
                       latency=LatencyStats(count=10, mean_ms=ms, median_ms=ms))
        if threads == 1:
            run.op_profile = [OpProfileRow(i, op, name, 0.5) for i, (op, name) in enumerate(layer_names)]
        runs.append(run)
    return BenchReport(runs=runs, model_file=str(model_file))


def guideline_report():
    def row(label, speed, arm, gpu):
        cell = GuidelineCell("x1", "(32,32)", 100, 50, 10, images_per_s=speed, latency_ms=1000 / speed)
        return GuidelineRow(label, [cell], [arm], [gpu], "(32,32)", "(128,128)")

    tables = [GuidelineTable(g, f"{g}: title", "c1:c2", ["x1"], ["x1"], ["x1"],
                             [row("1:1", 100.0, 76.2, 1480), row("1:12", 80.0, 57.6, 748)], "1:1 is fastest",
                             [DirectionCheck("x1", "1:1", "1:12", 0.8, 0.76, 0.51, True)], "reproduced")
              for g in ("G1", "G2", "G3", "G4")]
    return GuidelineReport("host", None, 28, 10, 1, None, 1, tables, ["a note"])


def make_run_dir(tmp_path):
    model_file = tiny_onnx(tmp_path / "tiny.onnx")
    analysis = analyze(model_file)
    (tmp_path / "analysis_tiny.json").write_text(to_json(analysis))
    names = [(layer.op_type, layer.name) for layer in analysis.layers]
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "bench.json").write_text(to_json(bench_report(model_file, names)))
    (tmp_path / "guidelines.json").write_text(to_json(guideline_report()))
    (tmp_path / "int8_layers.json").write_text(json.dumps(
        {"layer_errors": [{"name": "conv1", "sqnr_db": 31.5}, {"name": "conv2", "sqnr_db": 24.0}]}))
    (tmp_path / "per_layer.json").write_text(json.dumps(  # the shape of edgekit.per_layer's PerLayerReport
        {"file": "m_int8.onnx", "mode": "int8", "layers": [{"index": 0, "tensor": "t0", "node": "conv3", "op": "Conv",
                                                            "sqnr_db": 28.0, "cosine": 0.99, "max_abs": 0.1}]}))
    (tmp_path / "unrelated.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "broken.json").write_text("{not json")
    return tmp_path


def test_report_page_has_every_section_and_is_self_contained(tmp_path):
    paths = write_run_report(make_run_dir(tmp_path))
    page = paths["html"].read_text()
    for needle in ("Benchmarks", "Latency per target and thread count", "Time per op type", "Analysis",
                   "Findings (ShuffleNetV2 guidelines G1-G4)", "Predicted vs measured share per op family",
                   "Per layer: memory access vs measured time", "ShuffleNetV2 guideline experiments", "G4: title",
                   "Per-layer error (int8)", "conv2", "conv3", "Files not included", "unrelated.json", "broken.json"):
        assert needle in page, needle
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert "<script" not in page and "<link" not in page
    assert page.count("<svg") >= 6
    markdown = paths["markdown"].read_text()
    assert "## ShuffleNetV2 guideline experiments" in markdown and "## Analysis:" in markdown


def test_collect_sorts_results_by_kind(tmp_path):
    found = collect_run_dir(make_run_dir(tmp_path))
    assert (len(found.analyses), len(found.benches), len(found.guidelines), len(found.layer_errors)) == (1, 1, 1, 2)
    assert len(found.skipped) == 2


def test_cli_report_and_analyze(tmp_path):
    run_dir = make_run_dir(tmp_path)
    result = CliRunner().invoke(main, ["report", str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0 and (run_dir / "report.html").is_file()
    result = CliRunner().invoke(main, ["analyze", str(run_dir / "tiny.onnx"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["kind"] == "analysis" and data["mult_adds"] == 64 * 3 * 8 + 64 * 8 * 9
    result = CliRunner().invoke(main, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a directory" in result.stderr
