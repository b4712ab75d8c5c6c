"""ExportRequest and Int8Recipe refuse impossible combinations themselves; export() maps them onto the
exporters (the same bytes as calling the exporter directly)."""

from __future__ import annotations

import pytest

from edgekit.errors import ExportError
from edgekit.export.request import ExportRequest, Int8Recipe, export
from edgekit.export.tflite_export import export_tflite


@pytest.mark.parametrize("kwargs, needle", [
    (dict(format="coreml"), "unknown format"),
    (dict(format="tflite", opset=13), "--opset applies to --format onnx"),
    (dict(format="onnx", labels=["a"]), "--labels applies to --format tflite"),
    (dict(weights="w.pth", pretrained=True), "not both"),
    (dict(mean=(0.5,)), "--mean and --std together"),
    (dict(input_kind="rgb"), "unknown --input"),
    (dict(format="tflite", int8=Int8Recipe(target_cpu="avx2")), "--target-cpu applies to --format onnx"),
    (dict(format="onnx", int8=Int8Recipe(io="uint8")), "--io applies to --format tflite"),
    (dict(format="tflite", int8=Int8Recipe(io="float")), "--input bytes takes 8-bit pixels"),
    (dict(format="tflite", int8=Int8Recipe(calib_method="entropy")), "not available for tflite"),
    (dict(format="onnx", int8=Int8Recipe(calib_method="entropy")), "not available for onnx"),
    (dict(format="onnx", int8=Int8Recipe(fold_normalization=False)), "needs the normalisation folded"),
])
def test_impossible_requests_are_refused(kwargs, needle):
    with pytest.raises(ExportError, match=needle):
        ExportRequest("shufflenet_v2_digits", **kwargs)


def test_possible_requests_are_accepted():
    ExportRequest("shufflenet_v2_digits", format="onnx", int8=Int8Recipe(fold_normalization=False),
                  input_kind="normalized")
    ExportRequest("shufflenet_v2_digits", format="tflite", int8=Int8Recipe(io="int8", calib_method="mse"))
    ExportRequest("shufflenet_v2_digits", format="tflite", input_kind="pixels", labels=[str(d) for d in range(10)])


def test_export_gives_the_exporters_file(tmp_path):
    request = ExportRequest("shufflenet_v2_digits", format="tflite", int8=Int8Recipe(calib=8, io="int8"),
                            output_dir=tmp_path / "a", samples=2)
    via_request = export(request)
    direct = export_tflite("shufflenet_v2_digits", int8=True, calib=8, io="int8", output_dir=tmp_path / "b",
                           samples=2)
    assert via_request.file_sha256 == direct.file_sha256
