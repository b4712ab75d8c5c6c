"""The standard TFLite Model Metadata (the TFLite Support schema) that Android Studio model binding, the
TFLite Support library and MediaPipe Tasks read, written into a .tflite beside edgekit's own entry.

The file is laid out the way TFLite Support's ``MetadataPopulator`` lays it out: a ``ModelMetadata``
flatbuffer (file identifier "M001") in a model buffer that the Metadata entry "TFLITE_METADATA" names, and
the associated files (labels) appended after the model as a zip archive, so the .tflite is also a zip.
Only the subset of the schema an image model needs is spelled out below (``_TABLES``), in the field order
of ``metadata_schema.fbs`` (schema 1.5.0), which is what fixes each field's slot.

Deterministic: the same model and ``AppMetadata`` give the same bytes (fixed zip timestamps and order).
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zipfile
from dataclasses import dataclass

import flatbuffers
import numpy as np
from flatbuffers import number_types
from flatbuffers.table import Table

from edgekit.errors import ExportError, ModelFileError

METADATA_NAME = "TFLITE_METADATA"
_METADATA_IDENTIFIER = b"M001"
_MODEL_IDENTIFIER = b"TFL3"
# The largest schema version among the fields written here; everything in ``_TABLES`` is 1.0.0 (see the
# "Added in" notes of metadata_schema.fbs and TFLite Support's GetMinimumMetadataParserVersion).
MIN_PARSER_VERSION = "1.0.0"
LABELS_DESCRIPTION = "Labels for the classes"
COLOR_CHANNELS = {"RGB": 3, "GRAYSCALE": 1}
# 1980-01-01 is the earliest time a zip entry can carry; a fixed one keeps the file byte-deterministic.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class InputInfo:
    """The image input as an app feeds it, ``height`` x ``width`` pixels.

    ``mean``/``std`` (one value, or one per channel) are the NormalizationOptions, in the input tensor's own
    (real) units: what turns 0..255 pixel values into the tensor's values. A float input in [0, 1]: mean
    [0], std [255]; an ImageNet-normalised one: mean [255*0.485, ...], std [255*0.229, ...]. An 8-bit
    input describes its dequantized value: mean [zero_point (+128 for int8)], std [1/scale], or None
    (MediaPipe feeds a uint8 input the pixels whatever the options say). MediaPipe refuses per-channel
    values that differ ("Per-channel image normalization is not available"); the TFLite Support library
    takes them. ``min``/``max`` are the input's Stats in the same units (None: none).
    """

    name: str
    description: str
    color_space: str
    mean: list[float] | None
    std: list[float] | None
    min: list[float] | None
    max: list[float] | None
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.color_space not in COLOR_CHANNELS:
            raise ExportError(f"input color space {self.color_space!r} is not one of {sorted(COLOR_CHANNELS)}")
        _check_paired("mean", self.mean, "std", self.std)
        if self.std is not None and not all(np.isfinite(s) and s > 0 for s in self.std):
            raise ExportError(f"input std {self.std} must be positive: it divides the pixel values")
        _check_paired("min", self.min, "max", self.max)
        if self.min is not None and any(lo > hi for lo, hi in zip(self.min, self.max, strict=True)):
            raise ExportError(f"input min {self.min} must not exceed max {self.max}")
        if int(self.height) < 1 or int(self.width) < 1:
            raise ExportError(f"input size {self.height}x{self.width} must be positive")


def _check_paired(name_a: str, a: list[float] | None, name_b: str, b: list[float] | None) -> None:
    if (a is None) != (b is None) or (a is not None and (not a or len(a) != len(b))):
        raise ExportError(f"input {name_a} {a} and {name_b} {b} must both be None or list as many values (one, "
                          "or one per channel)")


@dataclass
class FeatureInfo:
    """A tensor that is not an image: a model input after the image (a feature vector, a mask)."""

    name: str
    description: str


@dataclass
class OutputInfo(FeatureInfo):
    """One output tensor; ``labels`` (one per class, in output order) are packed as a labels file."""

    labels: list[str] | None = None

    def __post_init__(self) -> None:
        if self.labels is not None and (not self.labels or any(
                not label or "\n" in label or "\r" in label for label in self.labels)):
            raise ExportError(f"output {self.name!r}: labels must be non-empty single-line strings")


@dataclass
class AppMetadata:
    """What ``with_support_metadata`` writes: the model's card and one entry per input and output tensor.
    ``version``, ``author`` and ``license`` may be None (left out)."""

    name: str
    description: str
    version: str | None
    author: str | None
    license: str | None
    input: InputInfo
    outputs: list[OutputInfo]
    #: the inputs after the image, in the model's input order
    extra_inputs: list[FeatureInfo] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name:
            raise ExportError("app metadata needs a model name")
        if not self.outputs:
            raise ExportError("app metadata needs one OutputInfo per model output")


def labels_file_name(output_index: int) -> str:
    """The associated file holding output ``output_index``'s labels: "labels.txt" for the first output."""
    return "labels.txt" if output_index == 0 else f"labels_{output_index}.txt"


# Tables of metadata_schema.fbs, fields in declaration order (a field's position is its slot); a union
# takes two slots, "<field>_type" (its enum) then "<field>" (kind "union"). Trailing fields edgekit never
# writes are left out, which the format allows.
_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "ModelMetadata": (
        ("name", "string"), ("description", "string"), ("version", "string"),
        ("subgraph_metadata", "[SubGraphMetadata]"), ("author", "string"), ("license", "string"),
        ("associated_files", "[AssociatedFile]"), ("min_parser_version", "string"),
    ),
    "SubGraphMetadata": (
        ("name", "string"), ("description", "string"), ("input_tensor_metadata", "[TensorMetadata]"),
        ("output_tensor_metadata", "[TensorMetadata]"), ("associated_files", "[AssociatedFile]"),
    ),
    "TensorMetadata": (
        ("name", "string"), ("description", "string"), ("dimension_names", "[string]"), ("content", "Content"),
        ("process_units", "[ProcessUnit]"), ("stats", "Stats"), ("associated_files", "[AssociatedFile]"),
    ),
    "Content": (("content_properties_type", "ContentProperties"), ("content_properties", "union")),
    "FeatureProperties": (),
    "ImageProperties": (("color_space", "ColorSpaceType"), ("default_size", "ImageSize")),
    "ImageSize": (("width", "uint"), ("height", "uint")),
    "ProcessUnit": (("options_type", "ProcessUnitOptions"), ("options", "union")),
    "NormalizationOptions": (("mean", "[float]"), ("std", "[float]")),
    "Stats": (("max", "[float]"), ("min", "[float]")),
    "AssociatedFile": (
        ("name", "string"), ("description", "string"), ("type", "AssociatedFileType"), ("locale", "string"),
        ("version", "string"),
    ),
}
# Byte enums, union type enums included (NONE = 0 there).
_ENUMS: dict[str, tuple[str, ...]] = {
    "AssociatedFileType": ("UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS",
                           "TENSOR_AXIS_SCORE_CALIBRATION", "VOCABULARY", "SCANN_INDEX_FILE"),
    "ColorSpaceType": ("UNKNOWN", "RGB", "GRAYSCALE"),
    "ContentProperties": ("NONE", "FeatureProperties", "ImageProperties", "BoundingBoxProperties",
                          "AudioProperties"),
    "ProcessUnitOptions": ("NONE", "NormalizationOptions", "ScoreCalibrationOptions",
                           "ScoreThresholdingOptions", "BertTokenizerOptions", "SentencePieceTokenizerOptions",
                           "RegexTokenizerOptions"),
}


def metadata_tree(meta: AppMetadata) -> dict:
    """``meta`` as the ModelMetadata table it becomes: nested dicts keyed by schema field name, enums by
    name (the shape ``read_support_metadata`` returns and TFLite Support's JSON dump shows)."""
    inp = meta.input
    image = {"name": inp.name, "description": inp.description, "content": {
        "content_properties_type": "ImageProperties",
        "content_properties": {"color_space": inp.color_space,
                               "default_size": {"width": int(inp.width), "height": int(inp.height)}},
    }}
    if inp.mean is not None:
        image["process_units"] = [{"options_type": "NormalizationOptions",
                                   "options": {"mean": list(inp.mean), "std": list(inp.std)}}]
    if inp.min is not None:
        image["stats"] = {"max": list(inp.max), "min": list(inp.min)}
    extra = [_feature(e) for e in meta.extra_inputs]
    outputs = []
    for i, out in enumerate(meta.outputs):
        tensor = _feature(out)
        if out.labels is not None:
            tensor["associated_files"] = [{"name": labels_file_name(i), "description": LABELS_DESCRIPTION,
                                           "type": "TENSOR_AXIS_LABELS"}]
        outputs.append(tensor)
    card = {"name": meta.name, "description": meta.description, "version": meta.version,
            "author": meta.author, "license": meta.license}
    return {
        **{key: value for key, value in card.items() if value is not None},
        "subgraph_metadata": [{"input_tensor_metadata": [image, *extra], "output_tensor_metadata": outputs}],
        "min_parser_version": MIN_PARSER_VERSION,
    }


def _feature(info: FeatureInfo) -> dict:
    return {"name": info.name, "description": info.description, "content": {
        "content_properties_type": "FeatureProperties", "content_properties": {}}}


def build_model_metadata(meta: AppMetadata) -> bytes:
    """The ModelMetadata flatbuffer (identifier "M001") for ``meta``."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(_write_table(builder, "ModelMetadata", metadata_tree(meta)), file_identifier=_METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _write_table(builder: flatbuffers.Builder, table: str, values: dict) -> int:
    fields = _TABLES[table]
    # A flatbuffer table refers to its strings, vectors and sub-tables by offset: write those first.
    children: dict[str, int] = {}
    for field, kind in fields:
        if field not in values:
            continue
        value = values[field]
        if kind == "string":
            children[field] = builder.CreateString(value)
        elif kind == "[float]":
            children[field] = builder.CreateNumpyVector(np.asarray(value, dtype=np.float32))
        elif kind == "[string]":
            children[field] = _offset_vector(builder, [builder.CreateString(v) for v in value])
        elif kind.startswith("["):
            children[field] = _offset_vector(builder, [_write_table(builder, kind[1:-1], v) for v in value])
        elif kind == "union":
            children[field] = _write_table(builder, values[field + "_type"], value)
        elif kind in _TABLES:
            children[field] = _write_table(builder, kind, value)
    builder.StartObject(len(fields))
    for slot, (field, kind) in enumerate(fields):
        if field in children:
            builder.PrependUOffsetTRelativeSlot(slot, children[field], 0)
        elif field in values and kind == "uint":
            builder.PrependUint32Slot(slot, int(values[field]), 0)
        elif field in values:
            builder.PrependInt8Slot(slot, _ENUMS[kind].index(values[field]), 0)
    return builder.EndObject()


def _offset_vector(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _read_table(buf: bytes, pos: int, table: str) -> dict:
    tab = Table(buf, pos)
    out: dict = {}
    for slot, (field, kind) in enumerate(_TABLES[table]):
        o = tab.Offset(4 + 2 * slot)
        if not o:
            continue
        if kind == "string":
            out[field] = tab.String(tab.Pos + o).decode("utf-8")
        elif kind == "uint":
            out[field] = tab.Get(number_types.Uint32Flags, tab.Pos + o)
        elif kind in _ENUMS:
            out[field] = _ENUMS[kind][tab.Get(number_types.Int8Flags, tab.Pos + o)]
        elif kind == "[float]":
            out[field] = [float(v) for v in tab.GetVectorAsNumpy(number_types.Float32Flags, o)]
        elif kind.startswith("["):
            start = tab.Vector(o)
            items = [start + 4 * i for i in range(tab.VectorLen(o))]
            out[field] = ([tab.String(x).decode("utf-8") for x in items] if kind == "[string]"
                          else [_read_table(buf, tab.Indirect(x), kind[1:-1]) for x in items])
        elif kind == "union":
            if out.get(field + "_type") in _TABLES:  # a member edgekit does not spell out is left out
                out[field] = _read_table(buf, tab.Indirect(tab.Pos + o), out[field + "_type"])
        else:
            out[field] = _read_table(buf, tab.Indirect(tab.Pos + o), kind)
    return out


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def with_support_metadata(content: bytes, meta: AppMetadata) -> bytes:
    """``content`` (a .tflite) with ``meta`` as its "TFLITE_METADATA" entry (replacing one already there)
    and the labels appended as a zip archive (replacing any archive already there). Every other metadata
    entry (edgekit's own included), tensor, operator and buffer is carried over unchanged.

    Raises ExportError when ``meta`` does not fit the model: one subgraph, one image input of
    ``meta.input``'s height, width and channels (NHWC), one OutputInfo per output and one label per class,
    NormalizationOptions for a float input (TFLite Support and MediaPipe refuse a float image without).
    """
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    _check_fits(schema, model, meta)
    blob = np.frombuffer(build_model_metadata(meta), dtype=np.uint8)
    entries = [m for m in (model.metadata or []) if m.name in (METADATA_NAME, METADATA_NAME.encode())]
    if entries:
        model.buffers[entries[0].buffer] = schema.BufferT(data=blob)
    else:
        model.buffers.append(schema.BufferT(data=blob))
        model.metadata = [*(model.metadata or []), schema.MetadataT(name=METADATA_NAME, buffer=len(model.buffers) - 1)]
    builder = flatbuffers.Builder(len(content) + len(blob) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=_MODEL_IDENTIFIER)
    files = {labels_file_name(i): ("\n".join(out.labels) + "\n").encode("utf-8")
             for i, out in enumerate(meta.outputs) if out.labels is not None}
    return append_associated_files(bytes(builder.Output()), files)


def append_associated_files(model: bytes, files: dict[str, bytes]) -> bytes:
    """``model`` followed by a zip of ``files``, whose offsets count from the start of the model as
    the populator's append does; stored uncompressed, as TFLite Support and MediaPipe read them in place."""
    if not files:
        return model
    out = io.BytesIO()
    out.write(model)
    # Mode "w" writes from the current position and never parses ``model``, which could hold zip
    # signatures by chance in its weights.
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = 3  # Unix, whichever system writes the file
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out.getvalue()


def _check_fits(schema, model, meta: AppMetadata) -> None:
    if len(model.subgraphs or []) != 1:
        raise ExportError(f"TFLite metadata describes one subgraph; this model has {len(model.subgraphs or [])}")
    graph = model.subgraphs[0]
    outputs = [graph.tensors[i] for i in graph.outputs]
    if len(graph.inputs) != 1 + len(meta.extra_inputs):
        raise ExportError(f"the model has {len(graph.inputs)} inputs but the app metadata describes "
                          f"{1 + len(meta.extra_inputs)}; give the image's InputInfo and one FeatureInfo per "
                          "further input")
    if len(meta.outputs) != len(outputs):
        raise ExportError(f"the model has {len(outputs)} outputs but the app metadata describes "
                          f"{len(meta.outputs)}; give one OutputInfo per output")
    tensor = graph.tensors[graph.inputs[0]]
    shape = [int(d) for d in tensor.shape]
    inp = meta.input
    channels = COLOR_CHANNELS[inp.color_space]
    if len(shape) != 4 or shape[1:] != [int(inp.height), int(inp.width), channels]:
        raise ExportError(f"the model's input is {shape} but the app metadata describes a {inp.height}x"
                          f"{inp.width} {inp.color_space} image (NHWC [1, {inp.height}, {inp.width}, {channels}])")
    for what in ("mean", "std", "min", "max"):
        values = getattr(inp, what)
        if values is not None and len(values) not in (1, channels):
            raise ExportError(f"input {what} has {len(values)} values; give 1 or {channels} (one per channel)")
    if tensor.type == schema.TensorType.FLOAT32 and inp.mean is None:
        raise ExportError("the model takes a float32 image: give the input's mean and std (in 0..255 pixel "
                          "units) or apps cannot feed it")
    # An 8-bit image input holds the pixel less an offset (int8 files take ``pixel - 128``).
    pixel_offset = {schema.TensorType.UINT8: 0, schema.TensorType.INT8: 128}
    if tensor.type in pixel_offset and inp.mean is not None:
        _check_integer_normalization(tensor, pixel_offset[tensor.type], inp)
    for i, (out, t) in enumerate(zip(meta.outputs, outputs, strict=True)):
        classes = int(t.shape[-1]) if t.shape is not None and len(t.shape) else 1
        if out.labels is not None and len(out.labels) != classes:
            raise ExportError(f"output {i} ({out.name!r}) has {classes} classes but {len(out.labels)} labels")


def _check_integer_normalization(tensor, offset: int, inp: InputInfo) -> None:
    # An 8-bit input takes the pixel itself (less ``offset`` for int8). TFLite Support's generated code
    # normalises, quantizes with the tensor's scale/zero point, then casts; that gives the pixel back only
    # when the options describe the tensor's real value: mean = zero_point + offset, std = 1 / scale.
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        raise ExportError("an 8-bit input with mean/std needs one quantization scale; leave mean/std None")
    want_mean, want_std = int(q.zeroPoint[0]) + offset, 1.0 / float(q.scale[0])
    if not (np.allclose(inp.mean, want_mean, rtol=1e-4, atol=1e-3) and np.allclose(inp.std, want_std, rtol=1e-4)):
        raise ExportError(f"the 8-bit input is quantized with scale {float(q.scale[0]):.6g} and zero point "
                          f"{int(q.zeroPoint[0])}, so its mean/std must be [{want_mean}] and [{want_std:.6g}] (or "
                          f"None), not {inp.mean} and {inp.std}")


def _metadata_buffer(content: bytes) -> bytes | None:
    model = _schema().Model.GetRootAsModel(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode("utf-8") == METADATA_NAME:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None


def read_support_metadata(content: bytes) -> dict:
    """The "TFLITE_METADATA" entry of a .tflite as nested dicts (``metadata_tree``'s shape; fields outside
    edgekit's subset of the schema are left out); empty when there is none. Raises ModelFileError when
    the entry is not a ModelMetadata flatbuffer."""
    blob = _metadata_buffer(content)
    if blob is None:
        return {}
    if len(blob) < 8 or blob[4:8] != _METADATA_IDENTIFIER:
        raise ModelFileError(f"the {METADATA_NAME} entry is not TFLite model metadata (no \"M001\" identifier); "
                             "write it again")
    try:
        return _read_table(blob, int.from_bytes(blob[:4], "little"), "ModelMetadata")
    except (IndexError, struct.error, UnicodeDecodeError) as exc:  # offsets or enums out of range
        raise ModelFileError(f"the {METADATA_NAME} entry is damaged ({exc.__class__.__name__}); write it "
                             "again") from None


def read_associated_files(content: bytes) -> dict[str, bytes]:
    """The files packed after the model (name -> bytes), in archive order; empty when none are."""
    stream = io.BytesIO(content)
    if not zipfile.is_zipfile(stream):
        return {}
    with zipfile.ZipFile(stream) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
