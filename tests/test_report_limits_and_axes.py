"""The parity table shows the limit of every gated metric; the per-layer chart has readable axes."""

import json
import math
import re

import numpy as np

from edgekit.check import KERNEL_MIN_COSINE, THRESHOLDS, ParityReport, compare_outputs, judge
from edgekit.per_layer import LayerError, PerLayerReport
from edgekit.report import line_chart_svg, per_layer_html, render_parity, to_json, write_run_report


def parity(precision: str, scale: float = 1.0, noise: float = 0.0, kernels: bool = False) -> ParityReport:
    rng = np.random.default_rng(0)
    ref = scale * rng.standard_normal((4, 10))
    out = compare_outputs("logits", ref, ref + noise * rng.standard_normal(ref.shape))
    thresholds = THRESHOLDS[precision]
    failures = judge([out], thresholds)
    return ParityReport(file="m.onnx", reference="pytorch:m", runtime="onnxruntime", precision=precision, samples=4,
                        data="test", skipped_images=0, outputs=[out], thresholds=thresholds, passed=not failures,
                        failures=failures, kernels=out if kernels else None)


def pass_row(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.strip().startswith("pass if"))
    return re.split(r"\s{2,}", line.strip())


def test_fp32_limit_includes_its_relative_part():
    small, large = parity("fp32", scale=1.0), parity("fp32", scale=100.0)
    assert pass_row(render_parity(small))[:3] == ["pass if", "<= 0.0001", "-"]
    # logits up to ~300: 1e-5 x the largest reference value is the larger limit, as check.judge applies it
    limit = 1e-5 * large.outputs[0].ref_max_abs
    assert limit > 1e-4 and pass_row(render_parity(large))[1] == f"<= {limit:.3g}"
    text = render_parity(large)
    assert "max abs <= 0.0001, or 1e-05 x the output's largest absolute reference value" in text
    assert "SQNR" not in text.split("limits:")[1].split("\n")[0]  # fp32 has no SQNR gate


def test_quantized_limits_are_cosine_and_the_recorded_sqnr():
    report = parity("int8", noise=0.1, kernels=True)
    text = render_parity(report)
    assert pass_row(text) == ["pass if", "-", "-", f">= {THRESHOLDS['int8'].min_cosine:g}", "-", "-", "-"]
    assert "more than 1 dB below what its export recorded" in text
    assert f"at fault only if cosine < {KERNEL_MIN_COSINE:g}" in text
    fp16 = pass_row(render_parity(parity("fp16", noise=1e-3)))
    assert fp16[1] == "<= 0.05" and fp16[3] == ">= 0.999"


def test_run_report_shows_the_limits_of_a_parity_json(tmp_path):
    (tmp_path / "parity.json").write_text(to_json(parity("int8", noise=0.1)))
    paths = write_run_report(tmp_path)
    assert not paths["skipped"]
    assert "| pass if | - | - | >= 0.95 |" in paths["markdown"].read_text()
    page = paths["html"].read_text()
    assert "<td>pass if</td>" in page and "&gt;= 0.95" in page and "limits: " in page


def test_parity_json_without_thresholds_still_renders(tmp_path):
    data = json.loads(to_json(parity("fp32")))
    del data["thresholds"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    paths = write_run_report(tmp_path)
    assert not paths["skipped"] and "pass if" not in paths["markdown"].read_text()


def per_layer_report(count: int) -> PerLayerReport:
    layers = [LayerError(index=i, tensor=f"t{i}", op="Conv", node=f"n{i}", sqnr_db=30.0 - (i % 7), cosine=0.999,
                         max_abs=0.1, jump_db=None if i == 0 else 1.5, flagged=i == 5) for i in range(count)]
    layers[3].sqnr_db = math.inf  # an exact tensor
    return PerLayerReport(file="/x/m_int8.onnx", reference="fp32", samples=2, data="test", mode="simulated",
                          layers=layers)


def x_tick_labels(svg: str) -> list[str]:
    return re.findall(r'<text x="[\d.]+" y="\d+" text-anchor="middle">([^<]*)</text>', svg)


def test_per_layer_chart_has_axis_labels_round_ticks_and_named_points():
    page = per_layer_html(per_layer_report(150))
    assert ">layer index (graph order, as in the table)<" in page and ">SQNR (dB)<" in page
    assert "<h2>SQNR of each quantized tensor against the fp32 model (higher is better)</h2>" in page
    assert ">SQNR of a tensor<" in page  # the legend
    assert x_tick_labels(page)[:-1] == [str(i) for i in range(0, 150, 20)]  # then the axis label
    assert "<title>#5 t5 (Conv, loses 1.5 dB, flagged): 25.0 dB</title>" in page
    assert "1 tensor(s) outside 0-100 dB are drawn at the edge" in page


def test_a_few_x_values_are_each_labelled():
    svg = line_chart_svg({"host cpu": [(1.0, 3.0), (2.0, 2.0), (4.0, 1.5)]}, x_label="threads",
                         y_label="mean latency (ms)")
    assert x_tick_labels(svg) == ["1", "2", "4", "threads"]
    assert "<title>host cpu: 3 ms at 1</title>" in svg
