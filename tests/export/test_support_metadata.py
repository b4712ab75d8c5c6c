"""Standard TFLite Model Metadata on the trained digits reference: read back with MediaPipe's generated
schema reader, run by MediaPipe's real ImageClassifier, byte-deterministic, and harmless to LiteRT and to
edgekit's own metadata entry."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgekit.data.digits import digits_images
from edgekit.errors import ExportError
from edgekit.evaluate import evaluate
from edgekit.export.metadata import read_metadata
from edgekit.export.tflite.support_metadata import (
    LABELS_DESCRIPTION,
    MIN_PARSER_VERSION,
    AppMetadata,
    InputInfo,
    OutputInfo,
    metadata_tree,
    read_associated_files,
    read_support_metadata,
    with_support_metadata,
)
from edgekit.export.tflite_export import export_tflite
from edgekit.models.registry import model_metadata
from edgekit.runtimes.litert_runtime import load_interpreter_module

MODEL = "shufflenet_v2_digits"


@pytest.fixture(scope="module", params=("normalized", "pixels", "bytes"))
def exported(request, tmp_path_factory) -> Path:
    """The digits reference as fp32 .tflite taking each input kind (float normalised, float [0, 1], uint8)."""
    out = tmp_path_factory.mktemp(request.param)
    return Path(export_tflite(MODEL, input_kind=request.param, output_dir=out).path)


def app_metadata_for(path: Path) -> AppMetadata:
    """App metadata for an exported file, from the input contract in its edgekit metadata: NormalizationOptions
    take 0..255 pixels to the input tensor's (real) values."""
    facts = read_metadata(path)
    contract = json.loads(facts["input_contract"])
    assert (facts["precision"], contract["layout"]) == ("fp32", "NHWC")
    mean, std = contract["mean"], contract["std"]
    _, height, width, _ = contract["shape"]
    if contract["kind"] == "normalized":  # (pixel/255 - mean) / std = (pixel - 255*mean) / (255*std)
        norm = [255 * m for m in mean], [255 * s for s in std]
        stats = [-m / s for m, s in zip(mean, std, strict=True)], [(1 - m) / s for m, s in zip(mean, std, strict=True)]
    elif contract["kind"] == "pixels":  # pixel / 255; the model normalises
        norm, stats = ([0.0], [255.0]), ([0.0], [1.0])
    else:  # uint8 bytes: the dequantized value scale * (pixel - zero_point); the model normalises
        norm, stats = ([float(contract["zero_point"])], [1 / contract["scale"]]), ([0.0], [1.0])
    registry = model_metadata(MODEL)
    return AppMetadata(
        name=MODEL, description=registry["description"], version="1", author="edgekit", license="Apache-2.0",
        input=InputInfo(name="image", description="A handwritten digit, RGB.", color_space="RGB", mean=norm[0],
                        std=norm[1], min=stats[0], max=stats[1], height=height, width=width),
        outputs=[OutputInfo(name="logits", description="One score per digit.", labels=list(registry["labels"]))],
    )


@pytest.fixture(scope="module")
def app_meta(exported) -> AppMetadata:
    return app_metadata_for(exported)


@pytest.fixture(scope="module")
def with_meta(exported, app_meta, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("app") / f"{MODEL}.tflite"
    path.write_bytes(with_support_metadata(exported.read_bytes(), app_meta))
    return path


@pytest.fixture(scope="module")
def heldout(app_meta) -> tuple[np.ndarray, np.ndarray]:
    # Already the model's exact size, so MediaPipe's own resize (and any difference from ours) never runs.
    return digits_images("heldout", (app_meta.input.height, app_meta.input.width))


def mediapipe_schema():
    """MediaPipe's generated metadata reader; by file path when the package's own imports fail."""
    pytest.importorskip("mediapipe", reason="mediapipe is a test dependency: pip install -e '.[dev]'")
    try:
        from mediapipe.tasks.metadata import metadata_schema_py_generated
    except ImportError:
        root = Path(importlib.util.find_spec("mediapipe").origin).parent
        spec = importlib.util.spec_from_file_location(
            "metadata_schema_py_generated", root / "tasks" / "metadata" / "metadata_schema_py_generated.py")
        metadata_schema_py_generated = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(metadata_schema_py_generated)
    return metadata_schema_py_generated


def metadata_entries(content: bytes) -> dict[str, bytes]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(content, 0)
    return {model.Metadata(i).Name().decode(): model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy().tobytes()
            for i in range(model.MetadataLength())}


def run_litert(content: bytes, images: np.ndarray, inp: InputInfo) -> np.ndarray:
    """Run ``images`` (uint8 NHWC) as an app would: a float input gets (pixel - mean) / std, an 8-bit one
    the pixels."""
    interpreter = load_interpreter_module()[0](model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    tensor_in, tensor_out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    if tensor_in["dtype"] == np.float32:
        images = ((images - np.float32(inp.mean)) / np.float32(inp.std)).astype(np.float32)
    results = []
    for sample in images:
        interpreter.set_tensor(tensor_in["index"], sample[None])
        interpreter.invoke()
        results.append(interpreter.get_tensor(tensor_out["index"]).copy())
    return np.concatenate(results)


def test_mediapipe_schema_reader_sees_every_field(with_meta, app_meta):
    schema = mediapipe_schema()
    entries = metadata_entries(with_meta.read_bytes())
    assert list(entries) == ["edgekit", "TFLITE_METADATA"]
    buf = entries["TFLITE_METADATA"]
    assert schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buf, 0)
    md = schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAs(buf, 0))
    assert (md.name, md.description, md.version, md.author, md.license, md.minParserVersion) == (
        MODEL.encode(), app_meta.description.encode(), b"1", b"edgekit", b"Apache-2.0", MIN_PARSER_VERSION.encode())
    assert md.associatedFiles is None and len(md.subgraphMetadata) == 1
    sg = md.subgraphMetadata[0]
    assert sg.inputProcessUnits is None and sg.outputProcessUnits is None  # 1.1.0 fields: not for 1.0.0 parsers
    assert len(sg.inputTensorMetadata) == 1 and len(sg.outputTensorMetadata) == 1

    image, want = sg.inputTensorMetadata[0], app_meta.input
    assert (image.name, image.description, image.associatedFiles) == (b"image", want.description.encode(), None)
    assert image.content.contentPropertiesType == schema.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == schema.ColorSpaceType.RGB
    size = image.content.contentProperties.defaultSize
    assert (size.width, size.height) == (want.width, want.height)
    (unit,) = image.processUnits
    assert unit.optionsType == schema.ProcessUnitOptions.NormalizationOptions
    np.testing.assert_array_equal(unit.options.mean, np.float32(want.mean))
    np.testing.assert_array_equal(unit.options.std, np.float32(want.std))
    np.testing.assert_array_equal(image.stats.min, np.float32(want.min))
    np.testing.assert_array_equal(image.stats.max, np.float32(want.max))

    logits = sg.outputTensorMetadata[0]
    assert (logits.name, logits.description, logits.processUnits, logits.stats) == (
        b"logits", b"One score per digit.", None, None)
    assert logits.content.contentPropertiesType == schema.ContentProperties.FeatureProperties
    (labels,) = logits.associatedFiles
    assert (labels.name, labels.description, labels.type, labels.locale, labels.version) == (
        b"labels.txt", LABELS_DESCRIPTION.encode(), schema.AssociatedFileType.TENSOR_AXIS_LABELS, None, None)


def test_labels_travel_as_a_zip_after_the_model(with_meta, app_meta):
    content = with_meta.read_bytes()
    assert read_associated_files(content) == {"labels.txt": "".join(f"{d}\n" for d in range(10)).encode()}
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        (info,) = archive.infolist()
        # Stored (TFLite Support and MediaPipe read the file in place), at a fixed time, after the model.
        assert (info.compress_type, info.date_time) == (zipfile.ZIP_STORED, (1980, 1, 1, 0, 0, 0))
        assert info.header_offset > len(content) // 2
    tree = read_support_metadata(content)
    assert tree == _as_float32(metadata_tree(app_meta))


def _as_float32(tree):
    if isinstance(tree, dict):
        return {key: _as_float32(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_as_float32(value) for value in tree]
    return float(np.float32(tree)) if isinstance(tree, float) else tree


def test_edgekit_metadata_and_model_are_kept(exported, with_meta):
    from ai_edge_litert import schema_py_generated as schema

    before, after = exported.read_bytes(), with_meta.read_bytes()
    assert read_metadata(with_meta) == read_metadata(exported)
    assert metadata_entries(after)["edgekit"] == metadata_entries(before)["edgekit"]
    old = schema.ModelT.InitFromPackedBuf(bytearray(before), 0)
    new = schema.ModelT.InitFromPackedBuf(bytearray(after), 0)
    # edgekit's export already wrote standard metadata: this replaces that entry's buffer, adds none
    assert len(new.buffers) == len(old.buffers)
    (replaced,) = [m.buffer for m in new.metadata if m.name in (b"TFLITE_METADATA", "TFLITE_METADATA")]
    for i, (a, b) in enumerate(zip(old.buffers, new.buffers, strict=True)):
        if i != replaced:
            np.testing.assert_array_equal(a.data if a.data is not None else [], b.data if b.data is not None else [])
    assert [(c.builtinCode, c.version) for c in old.operatorCodes] == [
        (c.builtinCode, c.version) for c in new.operatorCodes]
    (g_old,), (g_new,) = old.subgraphs, new.subgraphs
    assert (g_old.inputs.tolist(), g_old.outputs.tolist()) == (g_new.inputs.tolist(), g_new.outputs.tolist())
    assert [(t.name, t.type, t.buffer, t.shape.tolist()) for t in g_old.tensors] == [
        (t.name, t.type, t.buffer, t.shape.tolist()) for t in g_new.tensors]
    assert [(o.opcodeIndex, o.inputs.tolist(), o.outputs.tolist()) for o in g_old.operators] == [
        (o.opcodeIndex, o.inputs.tolist(), o.outputs.tolist()) for o in g_new.operators]


def test_deterministic_and_replaces_its_own_entry(exported, app_meta):
    content = exported.read_bytes()
    once = with_support_metadata(content, app_meta)
    assert with_support_metadata(content, app_meta) == once
    assert with_support_metadata(once, app_meta) == once
    renamed = dataclasses.replace(app_meta, name="digits-v2", outputs=[
        OutputInfo("logits", "Scores.", labels=[f"digit {d}" for d in range(10)])])
    again = with_support_metadata(once, renamed)
    assert list(metadata_entries(again)) == ["edgekit", "TFLITE_METADATA"]
    assert read_support_metadata(again)["name"] == "digits-v2"
    assert read_associated_files(again) == {"labels.txt": "".join(f"digit {d}\n" for d in range(10)).encode()}
    unlabelled = with_support_metadata(again, dataclasses.replace(app_meta, outputs=[OutputInfo("logits", "")]))
    assert read_associated_files(unlabelled) == {}
    (logits,) = read_support_metadata(unlabelled)["subgraph_metadata"][0]["output_tensor_metadata"]
    assert "associated_files" not in logits


def test_litert_runs_the_file_unchanged(exported, with_meta, app_meta, heldout):
    images = heldout[0][:32]
    np.testing.assert_array_equal(run_litert(with_meta.read_bytes(), images, app_meta.input),
                                  run_litert(exported.read_bytes(), images, app_meta.input))


def test_mediapipe_image_classifier_agrees_with_edgekit_eval(with_meta, heldout):
    pytest.importorskip("mediapipe", reason="mediapipe is a test dependency: pip install -e '.[dev]'")
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    images, labels = heldout
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(with_meta)))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        tops = []
        for rgb in images:
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
            categories = result.classifications[0].categories
            assert sorted(c.category_name for c in categories) == [str(d) for d in range(10)]
            tops.append(int(categories[0].category_name))
    mediapipe_top1 = 100.0 * float(np.mean(np.array(tops) == labels))
    edgekit_top1 = 100.0 * evaluate(with_meta, "digits").results[0].top1
    assert abs(mediapipe_top1 - edgekit_top1) <= 0.5, (mediapipe_top1, edgekit_top1)
    assert mediapipe_top1 >= 99.0


def test_refuses_metadata_that_does_not_fit(exported, app_meta):
    content = exported.read_bytes()
    wrong = {
        "10 classes but 9 labels": dataclasses.replace(app_meta, outputs=[OutputInfo("logits", "", list("012345678"))]),
        "has 1 outputs": dataclasses.replace(app_meta, outputs=[OutputInfo("a", ""), OutputInfo("b", "")]),
        "32x32 RGB": dataclasses.replace(app_meta, input=dataclasses.replace(app_meta.input, height=32, width=32)),
        "GRAYSCALE": dataclasses.replace(app_meta, input=dataclasses.replace(app_meta.input, color_space="GRAYSCALE",
                                                                             mean=[0.0], std=[255.0])),
        "input mean has 2 values": dataclasses.replace(app_meta, input=dataclasses.replace(
            app_meta.input, mean=[0.0, 0.0], std=[255.0, 255.0])),
    }
    if json.loads(read_metadata(exported)["input_contract"])["dtype"] == "float32":
        wrong["takes a float32 image"] = dataclasses.replace(app_meta, input=dataclasses.replace(
            app_meta.input, mean=None, std=None))
    else:  # the options must give the pixel back through quantization, as TFLite Support's generated code does
        wrong["mean/std must be"] = dataclasses.replace(app_meta, input=dataclasses.replace(
            app_meta.input, mean=[127.5], std=[127.5]))
        assert with_support_metadata(content, dataclasses.replace(app_meta, input=dataclasses.replace(
            app_meta.input, mean=None, std=None)))
    for message, meta in wrong.items():
        with pytest.raises(ExportError, match=message):
            with_support_metadata(content, meta)


@pytest.mark.parametrize("change, message", [
    ({"color_space": "BGR"}, "color space"),
    ({"std": [0.0]}, "positive"),
    ({"std": None}, "both be None"),
    ({"min": [1.0], "max": [0.0]}, "must not exceed"),
    ({"height": 0}, "positive"),
])
def test_input_info_validates_itself(change, message):
    fields = dict(name="image", description="", color_space="RGB", mean=[0.0], std=[255.0], min=[0.0],
                  max=[1.0], height=8, width=8)
    with pytest.raises(ExportError, match=message):
        InputInfo(**(fields | change))


def test_labels_must_be_single_lines():
    with pytest.raises(ExportError, match="single-line"):
        OutputInfo("logits", "", labels=["a", "b\nc"])
