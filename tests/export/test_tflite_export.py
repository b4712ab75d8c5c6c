"""TFLite export end to end, through the real LiteRT interpreter: parity, layout, XNNPACK, determinism."""

import json
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.check import check_exported_file
from edgekit.errors import ExportError
from edgekit.export.metadata import read_metadata
from edgekit.export.onnx_export import simplify, torch_to_onnx
from edgekit.export.passes import apply_shuffle_passes
from edgekit.export.tflite.fold_shuffles import FoldNotApplicable, fold_shuffles
from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
from edgekit.export.tflite.inspect import undelegated_ops
from edgekit.export.tflite.shuffle import lower_shuffles
from edgekit.export.tflite.writer import write_tflite
from edgekit.export.tflite_export import export_tflite
from edgekit.runtimes.litert_runtime import load_interpreter_module


def run_tflite(content: bytes, x_nhwc: np.ndarray) -> np.ndarray:
    interpreter = load_interpreter_module()[0](model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for sample in x_nhwc:
        interpreter.set_tensor(inp["index"], sample[None].astype(np.float32))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"]).copy())
    return np.concatenate(results)


def nhwc_graph(module: nn.Module, shape):
    onnx_model, _, _ = apply_shuffle_passes(simplify(torch_to_onnx(module.eval(), shape)), "reshape")
    return onnx_to_tflite_graph(onnx_model)


@pytest.fixture(scope="module")
def x0_5_fp32(tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite")
    return export_tflite("shufflenet_v2_x0_5", output_dir=out, samples=4), out


def test_fp32_export_is_native_nhwc_and_one_partition(x0_5_fp32):
    result, out = x0_5_fp32
    assert result.parity.passed and result.parity.outputs[0].max_abs <= 1e-4
    assert result.layout_transposes == 0 and result.xnnpack_partitions == 1
    assert result.shuffle_lowering == "folded" and len(result.shuffles) == 16  # "auto" folds ShuffleNetV2
    assert "TRANSPOSE" not in result.op_histogram and "SPLIT" not in result.op_histogram
    # explicit PAD only where SAME differs from PyTorch: the max pool and the two stride-2 depthwise convs of
    # each of the three downsampling blocks; conv1 reads the camera bytes (the default input) through the
    # pixel fill (mean-pixel strips joined by CONCATENATION) instead, after one DEQUANTIZE of the uint8 input
    assert result.op_histogram["PAD"] == 7 and result.op_histogram["DEQUANTIZE"] == 1
    assert result.input_contract["kind"] == "bytes" and result.input_contract["dtype"] == "uint8"
    assert sorted(p.name for p in out.iterdir()) == [
        "shufflenet_v2_x0_5.tflite", "shufflenet_v2_x0_5.tflite.html", "shufflenet_v2_x0_5.tflite.json",
    ]


def test_metadata_makes_the_file_self_describing(x0_5_fp32):
    _, out = x0_5_fp32
    meta = read_metadata(out / "shufflenet_v2_x0_5.tflite")
    assert meta["model"] == "shufflenet_v2_x0_5" and meta["layout"] == "NHWC"
    # the reference's NCHW shape says so by its name; the file's own NHWC input is in its contract
    assert meta["reference_input_shape"] == "1,3,224,224" and "input_shape" not in meta and "0.485" in meta["mean"]
    assert json.loads(meta["input_contract"])["shape"] == [1, 224, 224, 3]
    assert check_exported_file(out / "shufflenet_v2_x0_5.tflite", samples=2).passed


def test_tflite_export_is_byte_deterministic(tmp_path, x0_5_fp32):
    first, _ = x0_5_fp32
    # checked like the first: a checked file also records the parity it proved, which is deterministic too
    again = export_tflite("shufflenet_v2_x0_5", output_dir=tmp_path, samples=4)
    assert again.file_sha256 == first.file_sha256


@pytest.mark.parametrize("lowering,transposes", [("roundtrip", 48), ("fused", 16), ("reshape", 16)])
def test_alternative_lowerings_keep_parity(tmp_path, lowering, transposes):
    result = export_tflite("shufflenet_v2_x0_5", output_dir=tmp_path, shuffle_lowering=lowering, samples=2)
    assert result.parity.passed and result.xnnpack_partitions == 1 and result.layout_transposes == 0
    assert result.op_histogram["TRANSPOSE"] == transposes


class Stack(nn.Module):
    """Three ShuffleNetV2 stride-1 blocks with 1x1 -> depthwise -> 1x1 branches, then a 1x1 head."""

    def __init__(self, c=24):
        super().__init__()
        half = c // 2
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(half, half, 1), nn.ReLU(), nn.Conv2d(half, half, 3, padding=1, groups=half),
                          nn.Conv2d(half, half, 1), nn.ReLU())
            for _ in range(3)
        )
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.head = nn.Conv2d(c, 10, 1)

    def forward(self, x):
        from edgekit.models.channel_shuffle import channel_shuffle

        x = self.stem(x)
        for branch in self.branches:
            x1, x2 = x.chunk(2, dim=1)
            x = channel_shuffle(torch.cat((x1, branch(x2)), 1), 2)
        return self.head(x)


def test_fold_shuffles_is_exact_and_removes_all_routing():
    torch.manual_seed(0)
    module = Stack()
    plain, _ = nhwc_graph(module, (1, 3, 12, 12))
    folded, _ = nhwc_graph(module, (1, 3, 12, 12))
    lower_shuffles(plain, "reshape")
    info = fold_shuffles(folded)
    kinds = {op.kind for op in folded.ops}
    assert not kinds & {"TRANSPOSE", "SPLIT", "SHUFFLE", "RESHAPE"}
    assert info["routed_tensors"] > 0
    x = np.random.default_rng(1).standard_normal((3, 12, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(run_tflite(write_tflite(folded), x), run_tflite(write_tflite(plain), x), atol=1e-5)
    with torch.no_grad():
        expected = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(run_tflite(write_tflite(folded), x), expected, atol=1e-5)


def test_fold_refuses_routing_that_starts_at_the_input():
    class InputRouted(nn.Module):
        def __init__(self):
            super().__init__()
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.pw = nn.Conv2d(8, 8, 1)

        def forward(self, x):
            from edgekit.models.channel_shuffle import channel_shuffle

            return self.pw(channel_shuffle(self.dw(x), 2))

    graph, _ = nhwc_graph(InputRouted(), (1, 8, 6, 6))
    with pytest.raises(FoldNotApplicable, match="graph input"):
        fold_shuffles(graph)


@pytest.mark.parametrize("size,stride,pads", [(16, 1, 1), (16, 2, 2), (15, 1, 0), (15, 2, 1)])
def test_padding_is_pytorchs(size, stride, pads):
    # TFLite SAME pads (0, 1) where PyTorch pads (1, 1) for a stride-2 window over an even size, and
    # agrees for stride 1 or odd sizes: PAD must appear exactly where they differ.
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, stride=stride, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
    graph, _ = nhwc_graph(conv, (1, 3, size, size))
    assert sum(op.kind == "PAD" for op in graph.ops) == pads
    x = np.random.default_rng(0).standard_normal((2, size, size, 3)).astype(np.float32)
    with torch.no_grad():
        expected = conv(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(run_tflite(write_tflite(graph), x), expected, atol=1e-5)


def test_augshufflenet_auto_falls_back_and_says_why(tmp_path):
    result = export_tflite("augshufflenet_x0_5", output_dir=tmp_path, samples=2)
    assert result.parity.passed and result.shuffle_lowering == "roundtrip"
    assert any("narrow convolutions" in note for note in result.notes)


def test_augshufflenet_folds_exactly_when_forced(tmp_path):
    # the crossover routes depthwise outputs: folding cuts conv0 -> depthwise chains into channel groups
    result = export_tflite("augshufflenet_x0_5", output_dir=tmp_path, shuffle_lowering="folded", samples=2)
    assert result.parity.passed and result.shuffle_lowering == "folded" and result.xnnpack_partitions == 1
    assert not {"TRANSPOSE", "SPLIT", "SLICE"} & set(result.op_histogram)


def test_unsupported_op_names_op_node_and_onnx(tmp_path):
    factory = tmp_path / "m.py"
    factory.write_text(textwrap.dedent("""
        import torch.nn as nn
        import torch.nn.functional as F

        class Up(nn.Module):
            def forward(self, x):
                return F.interpolate(x, scale_factor=2.0, mode="bicubic")

        def up():
            return Up()
    """))
    with pytest.raises(ExportError, match=r"Resize \(node .*--format onnx still works"):
        export_tflite(f"{factory}:up", input_shape=(1, 3, 8, 8), output_dir=tmp_path / "o")
    assert list((tmp_path / "o").iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
                                  "augshufflenet_x1_0", "augshufflenet_x2_0"])
def test_every_reference_model_exports_fp32(tmp_path, name):
    result = export_tflite(name, output_dir=tmp_path, samples=4)
    assert result.parity.passed and result.layout_transposes == 0 and result.xnnpack_partitions == 1



@pytest.fixture(scope="module")
def x0_5_int8(tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite_int8")
    return export_tflite("shufflenet_v2_x0_5", int8=True, calib=32, output_dir=out, samples=8), out


def test_int8_export_is_full_integer_and_one_partition(x0_5_int8):
    result, out = x0_5_int8
    # the default input is camera bytes: uint8 in and out, each edge an exact DEQUANTIZE + QUANTIZE (zero point
    # +-128) that XNNPACK runs: no op is left to LiteRT's builtin kernels (a uint8 <-> int8 QUANTIZE would be)
    assert result.precision == "int8" and result.io == "uint8"
    # measured 0.980 on these untrained weights (the peers' converters reach 0.982-0.984 on such weights)
    assert result.parity.passed and result.parity.outputs[0].cosine >= 0.97
    assert result.xnnpack_partitions == 1 and result.layout_transposes == 0
    assert result.op_histogram["QUANTIZE"] == 2 and result.op_histogram["DEQUANTIZE"] == 2
    assert undelegated_ops((out / "shufflenet_v2_x0_5_int8.tflite").read_bytes()) == []
    assert not any("XNNPACK does not take" in note for note in result.notes)
    assert result.input_quantization == {"scale": pytest.approx(1 / 255), "zero_point": 0}
    assert "32 bundled" in result.calibration
    interpreter = load_interpreter_module()[0](model_path=str(out / "shufflenet_v2_x0_5_int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.uint8
    assert read_metadata(out / "shufflenet_v2_x0_5_int8.tflite")["precision"] == "int8"


def test_int8_file_passes_check(x0_5_int8):
    _, out = x0_5_int8
    report = check_exported_file(out / "shufflenet_v2_x0_5_int8.tflite", samples=4)
    assert report.precision == "int8" and report.passed


def test_int8_float_io(tmp_path):
    result = export_tflite("shufflenet_v2_x0_5", int8=True, input_kind="pixels", calib=16, output_dir=tmp_path,
                           samples=4)
    assert result.io == "float32" and result.parity.passed
    assert result.op_histogram["QUANTIZE"] == 1 and result.op_histogram["DEQUANTIZE"] == 1
    assert result.input_contract["kind"] == "pixels"


def test_int8_int8_io_has_no_edge_ops(tmp_path):
    result = export_tflite("shufflenet_v2_x0_5", int8=True, io="int8", calib=16, output_dir=tmp_path, samples=4)
    assert result.io == "int8" and result.parity.passed and result.xnnpack_partitions == 1
    assert "QUANTIZE" not in result.op_histogram and "DEQUANTIZE" not in result.op_histogram
    assert result.input_quantization == {"scale": pytest.approx(1 / 255), "zero_point": -128}  # pixel - 128


def test_int8_without_usable_calibration_images(tmp_path):
    empty = tmp_path / "calib"
    empty.mkdir()
    (empty / "broken.png").write_bytes(b"not a png")
    from edgekit.errors import DataError

    with pytest.raises(DataError):
        export_tflite("shufflenet_v2_x0_5", int8=True, calib=str(empty), output_dir=tmp_path / "o")
    assert list((tmp_path / "o").iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
                                  "augshufflenet_x0_5", "augshufflenet_x1_0"])
def test_every_reference_model_exports_int8(tmp_path, name):
    result = export_tflite(name, int8=True, calib=32, output_dir=tmp_path, samples=8)
    assert result.parity.passed and result.xnnpack_partitions == 1 and result.layout_transposes == 0


_TWO_READERS = """
    import torch
    import torch.nn as nn

    class TwoReaders(nn.Module):
        # the input is read by a convolution and by a skip connection: the normalisation cannot be folded
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return (self.conv(x) + x).mean(dim=(2, 3))

    def two_readers():
        return TwoReaders()
"""


def test_unfoldable_input_is_normalised_by_ops_in_fp32_and_refused_in_int8(tmp_path):
    factory = tmp_path / "m.py"
    factory.write_text(textwrap.dedent(_TWO_READERS))
    spec = f"{factory}:two_readers"
    fp32 = export_tflite(spec, input_shape=(1, 3, 16, 16), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3),
                         output_dir=tmp_path / "fp32", samples=2)
    assert fp32.parity.passed and fp32.io == "uint8"
    assert any("MUL and an ADD" in n and "not read by exactly one Conv" in n for n in fp32.notes)
    with pytest.raises(ExportError, match=r"cannot take pixels in int8 \(the input is not read by exactly one Conv\)"
                                          r"; pass --input normalized"):
        export_tflite(spec, int8=True, input_shape=(1, 3, 16, 16), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3),
                      output_dir=tmp_path / "int8")
    assert not (tmp_path / "int8").exists() or list((tmp_path / "int8").iterdir()) == []
