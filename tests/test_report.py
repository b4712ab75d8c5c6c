import json
import math
from dataclasses import dataclass

from edgekit.report import bar_chart_svg, markdown_table, table, to_json


@dataclass
class Row:
    name: str
    value: float
    shape: tuple


def test_json_handles_tuples_and_infinity():
    data = json.loads(to_json(Row("a", math.inf, (1, 3))))
    assert data == {"name": "a", "value": "inf", "shape": [1, 3]}


def test_table_aligns_columns():
    text = table(["name", "n"], [["a", 1], ["long", 1000]])
    lines = text.splitlines()
    assert len({len(line) for line in lines[1:]}) == 1
    assert lines[2].endswith("   1") and lines[3].endswith("1000")


def test_markdown_table_shape():
    md = markdown_table(["a", "b"], [[1, None]])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1 | - |"]


def test_svg_is_self_contained_and_escaped():
    svg = bar_chart_svg([("<Conv>", 3.0), ("Relu", 1.0)])
    assert svg.startswith("<svg") and "&lt;Conv&gt;" in svg and "http" not in svg.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_parity_text_states_kernel_and_simulation_facts_per_output():
    from edgekit.check import KERNEL_LOSS_DB, THRESHOLDS, OutputParity, ParityReport
    from edgekit.report.export import render_parity

    def out(name, cosine):
        return OutputParity(name=name, shape=(1, 4), max_abs=0.1, mean_abs=0.01, ref_max_abs=1.0, cosine=cosine,
                            sqnr_db=20.0)

    report = ParityReport(file="m.onnx", reference="m", runtime="onnxruntime", precision="int8", samples=4,
                          data="crops", skipped_images=0, outputs=[out("a", 0.99), out("b", 0.97)],
                          thresholds=THRESHOLDS["int8"], passed=True, kernels=out("b", 0.991),
                          kernel_outputs=[out("a", 0.9991), out("b", 0.991)],
                          simulated=[out("a", 0.992), out("b", 0.96)])
    text = render_parity(report)
    assert f"> {KERNEL_LOSS_DB:g} dB SQNR further" in text
    assert "  a: cosine 0.999100" in text and "simulation vs reference cosine 0.992000" in text
    assert "  b: cosine 0.991000" in text and "simulation vs reference cosine 0.960000" in text
