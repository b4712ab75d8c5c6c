"""End to end: registry model -> ONNX file + report, parity proven on real images by ONNX Runtime."""

import hashlib
import json

import onnx
import pytest
import torch

from edgekit.check import check_exported_file
from edgekit.errors import WeightsError
from edgekit.export import export_onnx
from edgekit.export.metadata import read_metadata
from edgekit.export.passes import SHUFFLE_LOWERINGS
from edgekit.models import create


@pytest.fixture(scope="module")
def x0_5_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    return export_onnx("shufflenet_v2_x0_5", output_dir=out), out


def test_export_writes_model_report_and_page(x0_5_export):
    result, out = x0_5_export
    assert sorted(p.name for p in out.iterdir()) == [
        "shufflenet_v2_x0_5.html", "shufflenet_v2_x0_5.json", "shufflenet_v2_x0_5.onnx",
    ]
    data = (out / "shufflenet_v2_x0_5.onnx").read_bytes()
    report = json.loads((out / "shufflenet_v2_x0_5.json").read_text())
    assert report["file_size"] == len(data)
    assert report["file_sha256"] == hashlib.sha256(data).hexdigest()
    assert report["weights_sha256"] == result.weights_sha256 and len(result.weights_sha256) == 64
    for tool in ("torch", "onnx", "onnxsim", "onnxruntime", "edgekit", "python"):
        assert report["versions"][tool] not in ("", "not installed")
    graph_ops = [n.op_type for n in onnx.load_from_string(data).graph.node]
    assert report["op_histogram"] == {op: graph_ops.count(op) for op in report["op_histogram"]}
    assert sum(report["op_histogram"].values()) == len(graph_ops)
    assert report["parity"]["passed"] is True
    assert report["parity"]["outputs"][0]["max_abs"] <= 1e-4


def test_every_shuffle_is_found_and_fused_with_its_split(x0_5_export):
    result, out = x0_5_export
    # 3 downsampling + 13 stride-1 blocks, each ending in a shuffle; 13 of them feed a block's chunk(2)
    assert len(result.shuffles) == 16
    assert {s.groups for s in result.shuffles} == {2}
    model = onnx.load(str(out / "shufflenet_v2_x0_5.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Transpose") == 16 and ops.count("Slice") == 0
    producers = {o: n for n in model.graph.node for o in n.output}
    splits = [n for n in model.graph.node if n.op_type == "Split"]
    assert len(splits) == 13 and all(producers[s.input[0]].op_type == "Transpose" for s in splits)
    fused = next(p for p in result.passes if p.name == "fuse_shuffle_split")
    assert fused.changed == 13


def test_metadata_lets_check_rebuild_the_reference(x0_5_export):
    _, out = x0_5_export
    meta = read_metadata(out / "shufflenet_v2_x0_5.onnx")
    assert meta["model"] == "shufflenet_v2_x0_5" and meta["weights_kind"] == "deterministic"
    report = check_exported_file(out / "shufflenet_v2_x0_5.onnx", samples=4)
    assert report.passed and report.samples == 4


def test_export_is_byte_deterministic(tmp_path, x0_5_export):
    first, _ = x0_5_export
    # checked like the first: a checked file also records the parity it proved, which is deterministic too
    second = export_onnx("shufflenet_v2_x0_5", output_dir=tmp_path)
    assert second.file_sha256 == first.file_sha256


@pytest.mark.parametrize("lowering", [lw for lw in SHUFFLE_LOWERINGS if lw != "fused"])
def test_other_lowerings_keep_parity(tmp_path, lowering):
    result = export_onnx("shufflenet_v2_x0_5", output_dir=tmp_path, shuffle_lowering=lowering, samples=4)
    assert result.parity.passed and result.shuffle_lowering == lowering
    ops = result.op_histogram
    if lowering == "concat":
        assert "Transpose" not in ops
    else:
        assert ops["Transpose"] == 16


def test_torchvision_format_state_dict_round_trips(tmp_path):
    # A torchvision-format file: the same keys as torchvision's shufflenetv2_x1-5666bf0f80.pth (the key list
    # itself is checked in tests/models), with weights unlike the default init.
    model = create("shufflenet_v2_x1_0")
    generator = torch.Generator().manual_seed(123)
    state = {k: (v + 0.01 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v)
             for k, v in model.state_dict().items()}
    state = {k: v.abs() + 1e-3 if k.endswith("running_var") else v for k, v in state.items()}
    weights = tmp_path / "shufflenetv2_x1-5666bf0f80.pth"
    torch.save(state, weights)
    out = tmp_path / "out"
    result = export_onnx("shufflenet_v2_x1_0", weights=weights, output_dir=out, samples=4)
    assert result.parity.passed and result.weights_source.startswith("file:")
    exported = out / "shufflenet_v2_x1_0.onnx"
    assert check_exported_file(exported, weights=str(weights), samples=2).passed
    with pytest.raises(WeightsError, match="--weights"):
        check_exported_file(exported, samples=2)  # the file says its weights came from a file
    other = tmp_path / "other.pth"
    torch.save(model.state_dict(), other)
    with pytest.raises(WeightsError, match="differ"):
        check_exported_file(exported, weights=str(other), samples=2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
     "augshufflenet_x0_5", "augshufflenet_x1_0", "augshufflenet_x1_5", "augshufflenet_x2_0"],
)
def test_every_reference_model_exports_with_fp32_parity(tmp_path, name):
    result = export_onnx(name, output_dir=tmp_path, samples=8)
    assert result.parity.passed
    assert result.parity.outputs[0].max_abs <= 1e-4
    assert len(result.shuffles) == 16
    if name.startswith("augshufflenet"):
        # the 10 augmented blocks of stages 3 and 4 shuffle 4 groups
        assert sorted(s.groups for s in result.shuffles).count(4) == 10
