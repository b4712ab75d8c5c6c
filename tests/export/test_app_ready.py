"""edgekit's default files drop into an app: MediaPipe's ImageClassifier (the task graph Android apps run)
loads the fp32 and int8 digits .tflite with nothing but the model path, and every file declares one input
contract that edgekit's own runtimes, the metadata and the printed usage line agree on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli import main
from edgekit.data.digits import digits_images
from edgekit.evaluate import evaluate
from edgekit.export.metadata import read_metadata
from edgekit.input_contract import METADATA_KEY, InputContract

MODEL = "shufflenet_v2_digits"


@pytest.fixture(scope="module")
def default_files(tmp_path_factory):
    """The four files `edgekit export` writes with default flags (fp32 and int8, TFLite and ONNX)."""
    out = tmp_path_factory.mktemp("app")
    runner = CliRunner()
    files = {}
    for fmt in ("tflite", "onnx"):
        for int8 in (False, True):
            args = ["export", "--model", MODEL, "--format", fmt, "--output", str(out), "--json"]
            result = runner.invoke(main, args + (["--int8"] if int8 else []), catch_exceptions=False)
            assert result.exit_code == 0, result.output
            report = json.loads(result.stdout)
            assert f"use: {report['usage']}" in result.stderr  # the one line on what to feed, printed
            files[(fmt, int8)] = report
    return files


def test_one_default_contract_for_every_format_and_precision(default_files):
    for (fmt, int8), report in default_files.items():
        contract = InputContract.from_metadata(read_metadata(report["path"])[METADATA_KEY])
        assert contract.kind == "bytes" and contract.dtype == "uint8", (fmt, int8)
        assert contract.layout == ("NHWC" if fmt == "tflite" else "NCHW")
        assert contract.scale == pytest.approx(1 / 255) and contract.zero_point == 0
        assert report["usage"].startswith("feed uint8 ") and "RGB bytes 0..255" in report["usage"]
        assert report["parity"]["passed"]


@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
def test_mediapipe_classifies_the_default_tflite_as_edgekit_eval_does(default_files, int8):
    pytest.importorskip("mediapipe", reason="mediapipe is a test dependency: pip install -e '.[dev]'")
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    path = default_files[("tflite", int8)]["path"]
    _, _, h, w = (int(d) for d in read_metadata(path)["reference_input_shape"].split(","))
    images, labels = digits_images("heldout", (h, w))  # the model's own size: no resize on either side
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        tops = []
        for rgb in images:
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
            tops.append(int(result.classifications[0].categories[0].category_name))
    mediapipe_top1 = 100.0 * float(np.mean(np.array(tops) == labels))
    edgekit_top1 = 100.0 * evaluate(path, "digits").results[0].top1
    assert abs(mediapipe_top1 - edgekit_top1) <= 0.5, (mediapipe_top1, edgekit_top1)
    assert mediapipe_top1 >= 98.0


def test_every_file_computes_the_same_from_its_own_input(default_files):
    """Feed each file what its contract says (bytes), straight through the engines, and compare logits."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    images, _ = digits_images("heldout", (64, 64))
    batch = images[:4]
    logits = {}
    for (fmt, int8), report in default_files.items():
        outs = []
        for rgb in batch:
            if fmt == "tflite":
                it = Interpreter(model_path=report["path"])
                it.allocate_tensors()
                it.set_tensor(it.get_input_details()[0]["index"], rgb[None].astype(np.uint8))
                it.invoke()
                detail = it.get_output_details()[0]
                raw = it.get_tensor(detail["index"]).astype(np.float32)
                scale, zero = detail["quantization"]
                outs.append((raw - zero) * scale if scale else raw)
            else:
                session = ort.InferenceSession(report["path"], providers=["CPUExecutionProvider"])
                outs.append(session.run(None, {session.get_inputs()[0].name: rgb.transpose(2, 0, 1)[None]})[0])
        logits[(fmt, int8)] = np.concatenate(outs)
    fp32 = logits[("tflite", False)]
    np.testing.assert_allclose(logits[("onnx", False)], fp32, atol=1e-3)
    for key in (("tflite", True), ("onnx", True)):
        assert (logits[key].argmax(1) == fp32.argmax(1)).all(), key


def test_export_page_says_how_to_use_the_file(default_files):
    import html
    from pathlib import Path

    for (fmt, _int8), report in default_files.items():
        page = Path(report["report_path"]).with_suffix(".html").read_text()
        assert "<h2>Use it</h2>" in page and html.escape(report["usage"]) in page
        assert ("ImageClassifier" if fmt == "tflite" else "OnnxTensor.createTensor") in page
        assert Path(report["path"]).name in page
