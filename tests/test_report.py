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
