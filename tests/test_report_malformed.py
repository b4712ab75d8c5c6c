"""`edgekit report DIR` over damaged result files: the rest still renders, each bad file is listed with why.

Every case runs through the CLI with ``catch_exceptions=False``, so a traceback fails the test.
"""

import copy
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgekit.android_bench.results import (
    BenchConfig,
    BenchReport,
    BenchRun,
    CoreInfo,
    DeviceFacts,
    LatencyStats,
    OpProfileRow,
    OpTypeRow,
)
from edgekit.cli import main
from edgekit.report import collect_run_dir, to_json, to_jsonable


def bench_json(model_file="m.onnx") -> dict:
    device = DeviceFacts(target="host", soc="test cpu", abi="x86_64", cores=[CoreInfo(0, 2_000_000)])
    run = BenchRun(device=device, model_file=model_file, model_sha256="0" * 64, tool="host", tool_version="ort",
                   config=BenchConfig(2, "cpu", 10, 0.1, 1), latency=LatencyStats(count=10, mean_ms=1.5),
                   op_profile=[OpProfileRow(0, "Conv", "conv1", 0.5)])
    run.op_type_summary = [OpTypeRow("Conv", 1, 0.5, 100.0)]
    return to_jsonable(BenchReport(runs=[run], model_file=model_file))


def mutated(change) -> str:
    data = copy.deepcopy(bench_json())
    change(data)
    return json.dumps(data)


def run_report(run_dir):
    result = CliRunner().invoke(main, ["report", str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    html = (run_dir / "report.html").read_text()
    markdown = (run_dir / "report.md").read_text()
    return html, markdown


def skipped_line(markdown: str, name: str) -> str:
    lines = [line for line in markdown.splitlines() if line.startswith(f"- {name}: ")]
    assert len(lines) == 1, markdown
    return lines[0]


BAD_BENCH = {
    "not JSON": ("{not json", "not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    "empty file": ("", "not valid JSON (Expecting value at line 1 column 1)"),
    "truncated": (to_json(bench_json())[:150], "not valid JSON"),
    "not UTF-8": (b'{"model_file": "\xe9"}', "not JSON (not UTF-8 text)"),
    "nested too deeply": ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply to read"),
    "runs is a string": (mutated(lambda d: d.update(runs="fast")),
                         "bench result, but a string where an object with field 'device' belongs"),
    "run is a number": (mutated(lambda d: d.update(runs=[1])),
                        "bench result, but a number where an object with field 'device' belongs"),
    "run is empty": (mutated(lambda d: d.update(runs=[{}])), "bench result, but field 'device' is missing"),
    "config is null": (mutated(lambda d: d["runs"][0].update(config=None)),
                       "bench result, but null where an object with field 'accelerator' belongs"),
    "latency missing": (mutated(lambda d: d["runs"][0].pop("latency")),
                        "bench result, but field 'latency' is missing"),
    "latency is text": (mutated(lambda d: d["runs"][0].update(latency="fast")),
                        "bench result, but a string where an object with field"),
    "mean is text": (mutated(lambda d: d["runs"][0]["latency"].update(mean_ms="1.5 ms")),
                     "bench result, but a field of the wrong type or value (ValueError: could not convert string"),
    "cores is a number": (mutated(lambda d: d["runs"][0]["device"].update(cores=8)),
                          "bench result, but a field of the wrong type or value (TypeError"),
    "op summary rows are lists": (mutated(lambda d: d["runs"][0].update(op_type_summary=[["Conv", 1]])),
                                  "bench result, but a list where an object with field 'op_type' belongs"),
}


@pytest.mark.parametrize("content, reason", BAD_BENCH.values(), ids=BAD_BENCH.keys())
def test_damaged_bench_json_is_listed_and_the_rest_renders(tmp_path, content, reason):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "bench.json").write_text(to_json(bench_json("good.onnx")))
    if isinstance(content, bytes):
        (tmp_path / "bench.json").write_bytes(content)
    else:
        (tmp_path / "bench.json").write_text(content)
    html, markdown = run_report(tmp_path)
    line = skipped_line(markdown, "bench.json")
    assert reason in line and "rerun" in line, line
    assert "## Benchmark (good/bench.json)" in markdown and "good/bench.json: good.onnx" in html
    assert "Files not included" in html and "bench.json: " in html


def test_damaged_results_of_every_kind(tmp_path):
    results = {
        "export.json": ({"format": "onnx", "op_histogram": {"Conv": 1}, "model": "m"}, "export result, but field"),
        "export_hist.json": ({"format": "onnx", "op_histogram": [["Conv", 1]], "model": "m", "precision": "fp32",
                              "file_size": 1, "parity": None}, "export result, but a list where an object belongs"),
        "parity.json": ({"outputs": "logits", "passed": False, "failures": []},
                        "parity result, but a string where an object with field 'name' belongs"),
        "analysis.json": ({"kind": "analysis"}, "analysis result, but field 'source' is missing"),
        "guidelines.json": ({"kind": "guidelines", "tables": 3}, "guidelines result, but field"),
        "layers.json": ({"layer_errors": [1, 2]}, "per-layer error result, but a number where an object belongs"),
    }
    for name, (data, _) in results.items():
        (tmp_path / name).write_text(json.dumps(data))
    (tmp_path / "bench.json").write_text(to_json(bench_json()))
    html, markdown = run_report(tmp_path)
    for name, (_, reason) in results.items():
        assert reason in skipped_line(markdown, name)
    assert "`edgekit check --per-layer`" in skipped_line(markdown, "layers.json")
    assert "## Benchmark (bench.json)" in markdown and "Sections: benchmarks</p>" in html


def test_a_directory_of_only_damaged_files_still_reports(tmp_path):
    (tmp_path / "a.json").write_text("[")
    (tmp_path / "b.json").write_text(json.dumps({"runs": None, "model_file": "m.onnx"}))
    html, markdown = run_report(tmp_path)
    assert "No edgekit results" in html
    assert "a.json: not valid JSON" in skipped_line(markdown, "a.json")
    assert "bench result, but" in skipped_line(markdown, "b.json")


def test_bad_op_profile_leaves_the_analysis_without_a_profile(tmp_path):
    """The bench renders from its op-type summary; only the comparison with the analysis is left out."""
    import torch
    from torch import nn

    from edgekit.analysis import analyze
    from edgekit.export.onnx_export import torch_to_onnx

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU()).eval()
    onnx_file = tmp_path / "tiny.onnx"
    onnx_file.write_bytes(torch_to_onnx(model, (1, 3, 8, 8)).SerializeToString())
    (tmp_path / "analysis.json").write_text(to_json(analyze(onnx_file)))
    bench = bench_json(str(onnx_file))
    bench["runs"][0]["op_profile"] = [{"index": 0, "op_type": "Conv", "name": "conv1", "avg_ms": "slow"}]
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    html, markdown = run_report(tmp_path)
    line = skipped_line(markdown, "bench.json")
    assert "op profile not compared with analysis.json: a field of the wrong type or value (ValueError" in line
    assert "## Benchmark (bench.json)" in markdown and "## Analysis:" in markdown
    assert "Predicted vs measured" not in html


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")
def test_a_fifo_named_json_does_not_hang_the_report(tmp_path):
    (tmp_path / "bench.json").write_text(to_json(bench_json()))
    os.mkfifo(tmp_path / "pipe.json")
    try:
        result = subprocess.run([sys.executable, "-m", "edgekit.cli", "report", str(tmp_path)],
                                capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:  # run() has killed it
        pytest.fail("edgekit report hung on a named pipe")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    line = skipped_line((tmp_path / "report.md").read_text(), "pipe.json")
    assert "a named pipe (FIFO), not a file" in line


def test_collect_never_raises_for_a_bad_file(tmp_path):
    for i, (content, _) in enumerate(BAD_BENCH.values()):
        (tmp_path / f"{i}.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    found = collect_run_dir(tmp_path)
    assert found.benches == [] and len(found.skipped) == len(BAD_BENCH)
