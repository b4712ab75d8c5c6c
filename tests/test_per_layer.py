"""``edgekit check --per-layer``: int8 error per quantized tensor against the fp32 model, on the trained
digits reference; and the messages for files it cannot explain."""

import json
import math

import onnx
import pytest
from click.testing import CliRunner

from edgekit.cli import main
from edgekit.errors import DataError, ModelFileError
from edgekit.export.onnx_int8 import export_onnx_int8
from edgekit.per_layer import JUMP_DB, LayerError, per_layer_errors, suggest_remedies


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory):
    # the normalised-input file: its input is quantized, so it has an input row to test
    out = tmp_path_factory.mktemp("per-layer")
    return export_onnx_int8("shufflenet_v2_digits", calib="digits:50", output_dir=out, check=False,
                            input_kind="normalized").path


@pytest.mark.slow
def test_default_bytes_file_compares_from_its_first_conv(tmp_path):
    """The default file takes the camera bytes themselves: no input quantization to list, every layer matched."""
    path = export_onnx_int8("shufflenet_v2_digits", calib="digits:50", output_dir=tmp_path, check=False).path
    report = per_layer_errors(path, data="digits", samples=4)
    assert report.unmatched == 0 and report.layers[0].op == "Conv" and report.layers[0].sqnr_db > 20


@pytest.mark.slow
def test_layers_in_graph_order_with_depthwise_jumps_flagged(digits_int8):
    report = per_layer_errors(digits_int8, data="digits", samples=8)
    layers = report.layers
    assert layers[0].op == "input" and layers[0].jump_db is None
    assert len(layers) > 100 and report.unmatched == 0 and layers[-1].tensor.startswith("logits")
    assert all(math.isfinite(layer.sqnr_db) and 0.99 < layer.cosine <= 1.0 for layer in layers)
    # Measured: every layer >= 25 dB on held-out digits; the output side ends near 30 dB.
    assert min(layer.sqnr_db for layer in layers) > 20
    # Channel shuffles move bytes: no error added there.
    assert all(abs(layer.jump_db) < 0.5 for layer in layers if layer.op in ("Reshape", "Transpose"))
    flagged = [layer for layer in layers if layer.flagged]
    assert flagged and all(layer.jump_db >= JUMP_DB for layer in flagged)
    assert any(layer.op == "Conv (depthwise)" for layer in flagged)
    assert report.suggestions and "loses" in report.suggestions[0]


@pytest.mark.slow
def test_cli_json_and_html_plot(digits_int8, tmp_path):
    html_path = tmp_path / "layers.html"
    result = CliRunner().invoke(main, ["check", digits_int8, "--per-layer", "--samples", "2", "--data", "digits",
                                       "--html", str(html_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["layers"][1]["op"] == "Conv"
    assert "<svg" in html_path.read_text()


@pytest.mark.slow
def test_file_without_float_reference_says_what_is_needed(digits_int8, tmp_path):
    model = onnx.load(digits_int8)
    del model.metadata_props[:]
    bare = tmp_path / "bare_int8.onnx"
    onnx.save(model, bare)
    with pytest.raises(DataError, match="pass --model NAME"):
        per_layer_errors(bare)


def test_not_an_int8_onnx_file(tmp_path):
    fp32 = tmp_path / "m.onnx"
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])])
    onnx.save(onnx.helper.make_model(graph), fp32)
    with pytest.raises(ModelFileError, match="no quantized activations"):
        per_layer_errors(fp32)
    result = CliRunner().invoke(main, ["check", str(fp32), "--html", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "--html and --calib apply to --per-layer" in result.output


def test_remedies_follow_the_op_and_calibration():
    def layer(i, op, jump):
        return LayerError(i, f"t{i}", op, f"n{i}", 30.0, 0.999, 0.1, jump, flagged=jump >= JUMP_DB)

    layers = [layer(1, "Conv (depthwise)", 9.0), layer(2, "Conv", 5.0), layer(3, "Conv", 1.0)]
    minmax = suggest_remedies(layers, {"calib_method": "minmax"})
    assert len(minmax) == 2 and "depthwise" in minmax[0] and "--calib-method percentile" in minmax[1]
    calm = suggest_remedies([layer(1, "Conv", 1.0)], {"calib_method": "percentile"})
    assert "error accumulates gradually" in calm[0]
