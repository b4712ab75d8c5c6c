"""An exported file records the parity it proved; ``check`` flags a quantized file that fell below it.

The mutation is the issue's: one output channel's weight scale of an int8 convolution divided by 4, which
keeps cosine above the int8 limit (0.95) but costs ~2.5 dB of SQNR (17.4 -> 14.9 dB, cosine 0.984).
"""

from __future__ import annotations

import json

import flatbuffers
import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.check import REGRESSION_DB, check_exported_file, judge_against_export
from edgekit.cli import main
from edgekit.export.metadata import EXPORT_PARITY_KEY, read_metadata
from edgekit.export.tflite_export import export_tflite


@pytest.fixture(scope="module")
def int8_tflite(tmp_path_factory):
    out = tmp_path_factory.mktemp("regression")
    return export_tflite("shufflenet_v2_digits", int8=True, output_dir=out).path


def scale_one_channel(src, dst, factor: float) -> str:
    """Copy of ``src`` with channel 0 of the first per-channel conv filter's scale (the stem convolution, which
    every later layer reads) multiplied by ``factor``. The last filters of a folded-shuffle file are fate-group
    slices whose channel 0 moves the logits by under 0.1 dB."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(open(src, "rb").read()), 0)
    filters = [t for t in model.subgraphs[0].tensors if t.quantization is not None
               and t.quantization.scale is not None and len(t.quantization.scale) > 1 and b"filter" in t.name]
    scale = np.array(filters[0].quantization.scale, dtype=np.float32)
    scale[0] *= factor
    filters[0].quantization.scale = scale
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with open(dst, "wb") as f:
        f.write(bytes(builder.Output()))
    return str(dst)


def test_export_records_the_parity_it_proved(int8_tflite):
    recorded = json.loads(read_metadata(int8_tflite)[EXPORT_PARITY_KEY])
    report = check_exported_file(int8_tflite)
    assert report.passed, report.failures
    assert recorded["data"] == report.data and recorded["samples"] == report.samples
    # the same file on the same machine: the same numbers, to the recorded rounding
    assert recorded["outputs"]["logits"]["sqnr_db"] == pytest.approx(report.outputs[0].sqnr_db, abs=0.01)


def test_a_changed_channel_scale_is_flagged_against_the_export(int8_tflite, tmp_path):
    damaged = scale_one_channel(int8_tflite, tmp_path / "damaged.tflite", 0.25)
    report = check_exported_file(damaged)
    assert report.outputs[0].cosine > 0.95  # the plain int8 limit alone would pass it
    assert not report.passed
    assert any("its export proved" in f for f in report.failures), report.failures
    result = CliRunner().invoke(main, ["check", damaged])
    assert result.exit_code == 1 and "changed since export" in result.output


def report_with(sqnr: float, data: str = "bundled", samples: int = 8, precision: str = "int8"):
    from edgekit.check import THRESHOLDS, ParityReport, compare_outputs

    out = compare_outputs("logits", np.ones((samples, 10)), np.ones((samples, 10)))
    out.sqnr_db = sqnr
    return ParityReport(file="f", reference="r", runtime="x", precision=precision, samples=samples, data=data,
                        skipped_images=0, outputs=[out], thresholds=THRESHOLDS[precision], passed=True)


def recorded(sqnr: float, data: str = "bundled", samples: int = 8) -> str:
    return json.dumps({"data": data, "samples": samples, "outputs": {"logits": {"sqnr_db": sqnr, "cosine": 1}}})


def test_judging_against_the_export_needs_the_same_inputs_and_a_readable_record():
    assert judge_against_export(report_with(20.0), recorded(20.0 + REGRESSION_DB * 0.9)) == []
    assert len(judge_against_export(report_with(20.0), recorded(20.0 + REGRESSION_DB * 1.1))) == 1
    assert judge_against_export(report_with(10.0, samples=16), recorded(30.0)) == []  # other inputs
    assert judge_against_export(report_with(10.0, data="folder x"), recorded(30.0)) == []
    assert judge_against_export(report_with(10.0, precision="fp32"), recorded(30.0)) == []
    for damaged in ("{", "[]", '{"data": 1}', json.dumps({"data": "bundled", "samples": "x", "outputs": {}})):
        assert judge_against_export(report_with(10.0), damaged) == []
