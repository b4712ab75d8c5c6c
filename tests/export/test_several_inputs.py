"""Models whose forward takes several inputs, through the product path: export (both formats, fp32), the files'
declarations, the runtimes, ``edgekit check`` from the file, benchmarking, and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.android_bench.bench import run_benchmark
from edgekit.android_bench.host import RUNNER, HostTarget
from edgekit.check import check_exported_file
from edgekit.cli import main
from edgekit.errors import DataError, ExportError
from edgekit.export.request import ExportRequest, Int8Recipe, export
from edgekit.export.tflite.support_metadata import read_support_metadata
from edgekit.file_metadata import read_metadata
from edgekit.models import resolve
from edgekit.runtimes import open_runtime
from edgekit.runtimes.base import guess_layout

NETS = """
import torch
from torch import nn


class ImageFeaturesMask(nn.Module):
    def __init__(self, sign=1.0):
        super().__init__()
        self.sign = sign
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.film = nn.Linear(7, 8)
        self.mask_conv = nn.Conv2d(2, 8, 1)
        self.head = nn.Linear(8, 5)

    def forward(self, image, features, mask):
        x = self.conv(image) * torch.sigmoid(self.film(features))[:, :, None, None]
        x = x + self.mask_conv(self.sign * mask)
        return self.head(x.mean((2, 3))), x


def make():
    return ImageFeaturesMask()


def make_negated_mask():  # the same weights, the mask negated: only the mask's values tell the two apart
    return ImageFeaturesMask(sign=-1.0)
"""
# The mask is 2x4x4: NHWC 1x4x4x2 in TFLite, which a guess from the shape takes for NCHW (4 looks like channels).
SHAPES = dict(input_shape=(1, 3, 16, 16), extra_input_shapes=((1, 7), (1, 2, 4, 4)))


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    path = tmp_path_factory.mktemp("several_inputs") / "nets.py"
    path.write_text(NETS)
    return path


@pytest.fixture(scope="module")
def exported(nets, tmp_path_factory):
    out = tmp_path_factory.mktemp("several_inputs_out")
    return {fmt: export(ExportRequest(f"{nets}:make", format=fmt, output_dir=out, **SHAPES))
            for fmt in ("onnx", "tflite")}


@pytest.mark.parametrize("fmt,mask_shape,mask_layout",
                         [("onnx", [1, 2, 4, 4], "NCHW"), ("tflite", [1, 4, 4, 2], "NHWC")])
def test_both_formats_pass_parity_and_declare_every_input(exported, fmt, mask_shape, mask_layout):
    result = exported[fmt]
    assert result.parity.passed and len(result.parity.outputs) == 2
    assert "seeded N(0, 1) values for features, mask" in result.parity.data
    assert result.extra_inputs == [{"name": "features", "shape": [1, 7], "layout": None},
                                   {"name": "mask", "shape": mask_shape, "layout": mask_layout}]
    assert f"and 'features' float32 1x7 as it is, and 'mask' float32 {mask_layout} " in result.usage
    declared = json.loads(read_metadata(result.path)["extra_inputs"])
    assert declared == [{"layout": e["layout"], "name": e["name"], "shape": e["shape"]} for e in result.extra_inputs]
    if fmt == "tflite":
        assert result.layout_transposes == 0 and result.xnnpack_partitions == 1


def test_runtimes_feed_each_input_in_its_declared_layout(exported, nets):
    handle = resolve(f"{nets}:make", **SHAPES)
    rng = np.random.default_rng(3)
    # the files take bytes: images of whole bytes, normalised, reach them exactly
    pixels = rng.integers(0, 256, (2, 3, 16, 16)) / 255.0
    image = ((pixels - np.reshape(handle.mean, (1, 3, 1, 1))) / np.reshape(handle.std, (1, 3, 1, 1)))
    xs = [image.astype(np.float32), *(rng.standard_normal((2, *s[1:])).astype(np.float32)
                                      for s in handle.input_shapes[1:])]
    with open_runtime(handle) as torch_rt:
        expected = torch_rt.run(xs)
    for fmt in ("onnx", "tflite"):
        with open_runtime(exported[fmt].path) as rt:
            assert [spec.name for spec in rt.inputs][1:] == ["features", "mask"]
            got = rt.run(xs)  # a batch of 2 runs as two of the file's batch of 1, every input split alike
        for want, have in zip(expected, got, strict=True):
            np.testing.assert_allclose(have, want, atol=2e-4, rtol=1e-4)
    with open_runtime(exported["tflite"].path) as rt:
        mask = rt.inputs[2]
        assert mask.layout == "NHWC" and guess_layout(mask.shape, "NHWC") == "NCHW"  # declared, not guessed
    # the observers the int8 steps use read such a file, and run it only with values for every input
    from edgekit.runtimes.observer import ActivationObserver, LiteRTObserver, ObservationError

    observer = LiteRTObserver(exported["tflite"].path)
    assert any(op["op_name"] == "CONV_2D" for op in observer.ops)
    nhwc = xs[0][:1].transpose(0, 2, 3, 1)
    with pytest.raises(ObservationError, match="3 inputs and values were given for 0 after the first"):
        next(observer.iterate(nhwc, ["output_0"]))
    with pytest.raises(ObservationError, match="no values were given for features, mask"):
        ActivationObserver(open(exported["onnx"].path, "rb").read(), ["output_0"])


def test_tflite_standard_metadata_lists_every_input(exported):
    content = open(exported["tflite"].path, "rb").read()
    inputs = read_support_metadata(content)["subgraph_metadata"][0]["input_tensor_metadata"]
    assert [t["content"]["content_properties_type"] for t in inputs] == [
        "ImageProperties", "FeatureProperties", "FeatureProperties"]
    assert [t["name"] for t in inputs[1:]] == ["features", "mask"]
    assert inputs[2]["description"] == "'mask' float32 NHWC 1x4x4x2, fed as it is"


def test_the_report_page_shows_app_code_that_can_run_the_file(exported):
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    # MediaPipe's image tasks refuse a file with several inputs, so the page must not offer them
    options = vision.ImageClassifierOptions(base_options=mp_tasks.BaseOptions(model_asset_path=exported["tflite"].path))
    with pytest.raises(ValueError, match="single input"):
        vision.ImageClassifier.create_from_options(options)
    tflite_page = open(exported["tflite"].report_path.replace(".json", ".html")).read()
    assert "ImageClassifier" not in tflite_page
    assert "runForMultipleInputsOutputs(arrayOf(image, features, mask)" in tflite_page
    onnx_page = open(exported["onnx"].report_path.replace(".json", ".html")).read()
    assert "&quot;features&quot; to features, &quot;mask&quot; to mask" in onnx_page


def test_check_rebuilds_the_further_inputs_from_the_file(exported, nets):
    for fmt in ("onnx", "tflite"):
        report = check_exported_file(exported[fmt].path, model=f"{nets}:make")
        assert report.passed and "features, mask" in report.data


def test_check_fails_a_reference_that_uses_a_further_input_differently(exported, nets, tmp_path):
    # the exported weights, the mask negated: the check must feed the mask to both sides to see it
    import torch

    torch.save(resolve(f"{nets}:make", **SHAPES).module.state_dict(), tmp_path / "make.pth")
    report = check_exported_file(exported["tflite"].path, model=f"{nets}:make_negated_mask",
                                 weights=str(tmp_path / "make.pth"))
    assert not report.passed and any(f.startswith("output_1") for f in report.failures)


def test_device_runner_and_host_bench_feed_every_input(exported):
    done = subprocess.run([sys.executable, str(RUNNER), exported["tflite"].path, "--runs", "2", "--warmup", "0"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-300:] + done.stderr[-300:]
    run = run_benchmark(exported["onnx"].path, HostTarget(), runs=3, min_secs=0.0, warmup=0).runs[0]
    assert run.status == "ok" and run.latency.count >= 3


def test_int8_without_the_further_inputs_values_is_refused_before_any_work(nets, tmp_path):
    with pytest.raises(ExportError, match=r"int8 calibrates the ranges of the model's 2 inputs after the image on "
                                          r"their real values.*: pass --extra-inputs FILE.npz"):
        ExportRequest(f"{nets}:make", format="tflite", int8=Int8Recipe(), output_dir=tmp_path, **SHAPES)


@pytest.fixture(scope="module")
def values(tmp_path_factory):
    """The user's values: features in [0, 1] (not N(0, 1)) and a binary mask, 6 rows."""
    path = tmp_path_factory.mktemp("several_inputs_values") / "values.npz"
    rng = np.random.default_rng(11)
    np.savez(path, features=rng.uniform(0, 1, (6, 7)).astype(np.float32),
             mask=(rng.uniform(0, 1, (6, 2, 4, 4)) > 0.5).astype(np.float32))
    return path


# without GPTQ the ranges come from their own observer pass instead of riding on GPTQ's: both paths feed the values
@pytest.mark.parametrize("fmt,gptq", [("onnx", True), ("tflite", True), ("onnx", False), ("tflite", False)])
def test_int8_calibrates_the_further_inputs_on_the_users_values(nets, values, tmp_path, fmt, gptq):
    recipe = Int8Recipe(calib=16, optimal_rounding=gptq)
    result = export(ExportRequest(f"{nets}:make", format=fmt, int8=recipe, output_dir=tmp_path,
                                  extra_data=values, **SHAPES))
    assert result.parity.passed and "features, mask from values.npz" in result.parity.data
    assert "features, mask from values.npz" in result.calibration
    assert min(out.cosine for out in result.parity.outputs) >= 0.995
    assert [e["name"] for e in result.extra_inputs] == ["features", "mask"]
    with open_runtime(result.path) as rt:
        assert [spec.dtype for spec in rt.inputs[1:]] == ["float32", "float32"]  # quantized inside the file
        assert rt.precision == "int8"
    if fmt == "tflite":
        assert result.xnnpack_partitions == 1 and result.layout_transposes == 0
        assert "uint8" in result.usage.split(";")[0]  # the image keeps its bytes contract
    report = check_exported_file(result.path, model=f"{nets}:make", extra_data=values)
    assert report.passed and report.data == result.parity.data
    # without them the check feeds N(0, 1), far outside the ranges the file calibrated: it fails, and says why
    unfed = check_exported_file(result.path, model=f"{nets}:make")
    assert not unfed.passed and any("pass them with --extra-inputs FILE.npz" in note for note in unfed.notes)
    per_layer = CliRunner().invoke(main, ["check", result.path, "--model", f"{nets}:make", "--per-layer"])
    assert per_layer.exit_code != 0 and "--per-layer compares files with one image input" in per_layer.output


def test_extra_values_that_do_not_fit_are_refused_in_one_line(nets, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.zeros((3, 6), np.float32), mask=np.zeros((3, 2, 4, 4), np.float32))
    with pytest.raises(DataError, match=r"'features' has shape \(3, 6\), not \(rows, 7\); pass an .npz with one "
                                        r"float array per further input \(features, mask\)"):
        resolve(f"{nets}:make", extra_data=bad, **SHAPES)
    np.savez(bad, features=np.zeros((3, 7), np.float32))
    with pytest.raises(DataError, match="has no array 'mask'"):
        resolve(f"{nets}:make", extra_data=bad, **SHAPES)
    np.savez(bad, features=np.zeros((3, 7), np.float32), mask=np.zeros((2, 2, 4, 4), np.float32))
    with pytest.raises(DataError, match=r"different row counts \(\[2, 3\]\)"):
        resolve(f"{nets}:make", extra_data=bad, **SHAPES)
    np.save(tmp_path / "one.npy", np.zeros((3, 7), np.float32))
    with pytest.raises(DataError, match="is a single array, not an .npz"):
        resolve(f"{nets}:make", extra_data=tmp_path / "one.npy", **SHAPES)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, features=np.array([object()] * 7, dtype=object).reshape(1, 7),
             mask=np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(DataError, match="cannot read --extra-inputs .*pickled.npz"):
        resolve(f"{nets}:make", extra_data=pickled, **SHAPES)  # object arrays would need a pickle: never loaded
    with pytest.raises(DataError, match="pass their --input-shape too"):
        resolve(f"{nets}:make", input_shape=(1, 3, 16, 16), extra_data=bad)


def test_shapes_that_cannot_be_are_refused_in_one_line(nets, tmp_path):
    runner = CliRunner()
    base = ["export", "--model", f"{nets}:make", "--output", str(tmp_path), "--input-shape", "1,3,16,16"]
    cases = [
        (["--input-shape", "2,7"], "starts with batch 2 but the image's batch is 1"),
        (["--input-shape", "1,7"], "forward takes 3 inputs (image, features, mask) but 2 input shapes were given"),
        (["--input-shape", "1,7", "--input-shape", "1,2,4,4", "--input-shape", "1,1"],
         "4 input shapes were given but the model's forward takes 3 (image, features, mask)"),
    ]
    for extra, message in cases:
        result = runner.invoke(main, base + extra)
        assert result.exit_code != 0 and message in " ".join(result.output.split()), result.output
    assert not any(tmp_path.iterdir())  # nothing half-written
    result = runner.invoke(main, ["eval", f"{nets}:make", "--input-shape", "1,3,16,16",
                                  "--input-shape", "1,7"])
    assert result.exit_code == 2 and "edgekit eval takes models with one image input" in result.output
    with pytest.raises(DataError, match="shufflenet_v2_x0_5 takes one image input; pass --input-shape once"):
        resolve("shufflenet_v2_x0_5", input_shape=(1, 3, 64, 64), extra_input_shapes=((1, 7),))


@pytest.mark.parametrize("record", [
    "not json", '{"name": "a"}', '[{"name": 1, "shape": [1, 7]}]', '[{"name": "a", "shape": [1, 0]}]',
    '[{"name": "a", "shape": [1, 99999999]}]', '[{"name": "a", "shape": [1, 7], "layout": "NHWC"}]',
    '[{"name": "a", "shape": [1, 2, 3, 4, 5, 6, 7]}]', '[{"shape": [1, 7]}]'])
def test_a_damaged_extra_inputs_record_is_never_trusted(record):
    # a file's metadata is data from whoever made the file: the runtimes fall back to guessing, check refuses
    from edgekit.input_contract import extra_inputs_from_metadata
    from edgekit.models.file_reference import metadata_extra_shapes
    from edgekit.runtimes.base import declared_layouts

    with pytest.raises((ValueError, KeyError, TypeError)):
        extra_inputs_from_metadata({"extra_inputs": record})
    assert declared_layouts({"extra_inputs": record}) == {}
    with pytest.raises(DataError, match="records unusable further inputs in its metadata; pass --input-shape once"):
        metadata_extra_shapes({"extra_inputs": record}, "x.tflite")
