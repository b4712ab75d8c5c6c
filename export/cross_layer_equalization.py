"""Data-driven cross-layer equalization of an fp32 ONNX graph, so per-tensor activation ranges suit int8.

After BatchNorm folding, the channels of one activation tensor can differ in range by orders of magnitude;
a per-tensor int8 scale set by the widest channel then leaves the narrow ones a few levels. Two rewrites
move that spread into weights, where quantization is per channel (Nagel et al. 2019, "Data-Free
Quantization", section 4.1, with ranges measured on calibration images instead of derived from weights):

(a) pointwise Conv -> Relu -> depthwise Conv: output channel ``c`` of the pointwise conv is multiplied by
    ``s_c = R / r_c`` (``r_c`` the largest Relu output of channel ``c`` over the images, ``R`` the largest
    over channels) and the depthwise filter of ``c`` divided by ``s_c``. Relu commutes with a positive
    scale and zero padding stays zero, so the graph computes the same, and each conv's per-channel weight
    scale just follows its channel: int8 weights lose nothing.
(b) depthwise Conv -> 1x1 Conv: depthwise channel ``c`` (filter and bias) is multiplied by
    ``(R / r_c) ** alpha`` (``r_c`` the largest ``|output|``) and input column ``c`` of the 1x1 conv divided
    by it. This narrows the depthwise output's range at the cost of shrinking the 1x1 conv's small columns
    within its per-output-channel weight scale; ``alpha`` trades the two (0 leaves these pairs alone).

Neither rewrite changes a tensor that the other measures (a rescales the depthwise input and undoes it in
the depthwise filter; b the 1x1 input and undoes it in the 1x1 filter), so one ONNX Runtime pass over the
images on the original graph gives every range.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from edgekit.errors import ExportError
from edgekit.export.passes.graph_utils import GraphIndex, NameAllocator, attribute, tensor_reads
from edgekit.runtimes.observer import ActivationObserver, ObservationError


@dataclass
class EqualizationResult:
    """What ``equalize_cross_layer`` rescaled: the number of pointwise->Relu->depthwise pairs and of
    depthwise->1x1 pairs it changed, the largest per-channel scale it applied (1.0 when none), and one
    human-readable line per pair."""

    pairs_pointwise_depthwise: int = 0
    pairs_depthwise_pointwise: int = 0
    max_scale: float = 1.0
    details: list[str] = field(default_factory=list)


def equalize_cross_layer(
    model: onnx.ModelProto, images_nchw: np.ndarray, *, alpha: float = 0.5, extra: dict[str, np.ndarray] | None = None
) -> tuple[onnx.ModelProto, EqualizationResult]:
    """Equalize the per-channel activation ranges of ``model`` (fp32, BatchNorm folded, single input)
    measured on ``images_nchw`` (a float array shaped like the model input, any number of images).

    Returns a new model (the input is not modified) that computes the same function up to float rounding,
    and an EqualizationResult. Patterns that do not match exactly (a tensor with other readers or that is a
    graph output, weights that are not float32 initializers, grouped convs that are not depthwise) are left
    alone; an initializer shared with another reader is copied before it is changed. ``alpha`` in [0, 1]
    is the strength of the depthwise->1x1 rewrite (b) in the module docstring. ``extra``: values of the
    model's inputs after the image, one row per image (``ActivationObserver``).

    Raises ExportError when ``alpha`` is out of range, the model does not have exactly one float input,
    or the images are empty, non-finite or do not fit that input.
    """
    if not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ExportError(f"cross-layer equalization alpha must be a number in [0, 1], got {alpha!r}")
    model = _copy(model)
    _check_images(model, images_nchw, extra)
    images = np.asarray(images_nchw, dtype=np.float32)

    index = GraphIndex(model)
    pointwise_depthwise = _pointwise_relu_depthwise_pairs(index)
    depthwise_pointwise = _depthwise_pointwise_pairs(index) if alpha > 0 else []
    result = EqualizationResult()
    if not pointwise_depthwise and not depthwise_pointwise:
        return model, result

    measured = [(relu.output[0], False) for _, relu, _ in pointwise_depthwise]
    measured += [(dw.output[0], True) for dw, _ in depthwise_pointwise]
    ranges = _channel_maxima(model, images, measured, extra)

    weights = _WeightEditor(model, index)
    for pw, relu, dw in pointwise_depthwise:
        scale = _scales(ranges[relu.output[0]], 1.0)
        weights.scale(pw, 1, scale, axis=0)
        weights.scale(pw, 2, scale, axis=0)
        weights.scale(dw, 1, 1.0 / scale, axis=0)
        result.pairs_pointwise_depthwise += 1
        result.max_scale = max(result.max_scale, float(scale.max()))
        result.details.append(f"{_label(pw)} -> Relu -> {_label(dw)}: {len(scale)} channels, {_spread(scale)}")
    for dw, pw in depthwise_pointwise:
        scale = _scales(ranges[dw.output[0]], alpha)
        weights.scale(dw, 1, scale, axis=0)
        weights.scale(dw, 2, scale, axis=0)
        weights.scale(pw, 1, 1.0 / scale, axis=1)
        result.pairs_depthwise_pointwise += 1
        result.max_scale = max(result.max_scale, float(scale.max()))
        result.details.append(
            f"{_label(dw)} -> {_label(pw)}: {len(scale)} channels, alpha {alpha:g}, {_spread(scale)}"
        )
    weights.write_back()
    return model, result


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _check_images(model: onnx.ModelProto, images_nchw, extra=None) -> None:
    """Raises ExportError if the images do not fit the model's first float input (or the model has further
    inputs ``extra`` gives no values for)."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    if len(inputs) != 1 + len(extra or {}):
        raise ExportError(
            f"cross-layer equalization needs a model with one input, this one has {len(inputs)}; "
            "equalize the single-input export"
        )
    tensor_type = inputs[0].type.tensor_type
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ExportError(
            f"cross-layer equalization needs a float32 model input, {inputs[0].name!r} is "
            f"{onnx.TensorProto.DataType.Name(tensor_type.elem_type)}; equalize the fp32 model before quantizing"
        )
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    images = np.asarray(images_nchw)
    expected = "x".join("N" if i == 0 else str(d) if d else "?" for i, d in enumerate(dims))
    if images.dtype.kind not in "fiu" or images.ndim != len(dims) or images.shape[0] == 0:
        raise ExportError(
            f"calibration images for cross-layer equalization must be a non-empty numeric array shaped "
            f"{expected} (NCHW), got {images.dtype} {'x'.join(map(str, images.shape)) or 'scalar'}"
        )
    if any(d and d != n for d, n in zip(dims[1:], images.shape[1:], strict=True)):
        raise ExportError(
            f"calibration images shaped {'x'.join(map(str, images.shape))} do not fit the model input "
            f"{expected}; pass NCHW images preprocessed for this model"
        )
    if not np.isfinite(images).all():
        raise ExportError("calibration images for cross-layer equalization contain NaN or inf; check preprocessing")
    batch = dims[0] if dims else None
    if batch and images.shape[0] % batch:
        raise ExportError(
            f"the model input has a fixed batch of {batch} but {images.shape[0]} calibration images were given; "
            f"pass a multiple of {batch}"
        )


def _float_initializer(index: GraphIndex, name: str) -> bool:
    """True for a float32 initializer that no graph input can override: a weight we may rescale."""
    init = index.initializers.get(name)
    return init is not None and name not in index.graph_inputs and init.data_type == onnx.TensorProto.FLOAT


def _constant_conv(index: GraphIndex, node: onnx.NodeProto) -> tuple[int, ...] | None:
    """The weight shape of a Conv whose weight and bias (if any) are float32 initializers, else None."""
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return None
    if not _float_initializer(index, node.input[1]):
        return None
    if len(node.input) > 2 and node.input[2] and not _float_initializer(index, node.input[2]):
        return None
    shape = tuple(index.initializers[node.input[1]].dims)
    return shape if len(shape) >= 3 else None


def _is_pointwise(index: GraphIndex, node: onnx.NodeProto) -> bool:
    shape = _constant_conv(index, node)
    return shape is not None and attribute(node, "group", 1) == 1 and all(k == 1 for k in shape[2:])


def _is_depthwise(index: GraphIndex, node: onnx.NodeProto) -> bool:
    """One filter per input channel (channel multiplier 1), so output channel c depends on input c only."""
    shape = _constant_conv(index, node)
    return shape is not None and shape[0] > 1 and shape[1] == 1 and attribute(node, "group", 1) == shape[0]


def _reads_as_data(node: onnx.NodeProto | None, tensor: str) -> bool:
    """``node`` reads ``tensor`` as its data input (not as a weight)."""
    return node is not None and node.input[0] == tensor


def _pointwise_relu_depthwise_pairs(index: GraphIndex) -> list[tuple[onnx.NodeProto, ...]]:
    pairs = []
    for pw in index.nodes:
        if not _is_pointwise(index, pw):
            continue
        relu = index.only_consumer(pw.output[0])
        if relu is None or relu.op_type != "Relu" or relu.domain not in ("", "ai.onnx"):
            continue
        dw = index.only_consumer(relu.output[0])
        if _reads_as_data(dw, relu.output[0]) and _is_depthwise(index, dw):
            pairs.append((pw, relu, dw))
    return pairs


def _depthwise_pointwise_pairs(index: GraphIndex) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    pairs = []
    for dw in index.nodes:
        if not _is_depthwise(index, dw):
            continue
        pw = index.only_consumer(dw.output[0])
        if _reads_as_data(pw, dw.output[0]) and _is_pointwise(index, pw):
            pairs.append((dw, pw))
    return pairs


def _channel_maxima(
    model: onnx.ModelProto, images: np.ndarray, tensors: list[tuple[str, bool]], extra=None
) -> dict[str, np.ndarray]:
    """Per-channel (axis 1) maximum of each named tensor over all images, of ``|x|`` where the flag says so,
    from one observer pass (the graph unfused, so every measured tensor is computed as the graph says)."""
    absolute = dict(tensors)
    maxima: dict[str, np.ndarray] = {}
    try:
        with ActivationObserver(model, list(absolute), extra=extra) as observer:
            for values in observer.iterate(images):
                for name, value in values.items():
                    value = np.abs(value) if absolute[name] else value
                    channel_max = value.max(axis=tuple(i for i in range(value.ndim) if i != 1)).astype(np.float64)
                    maxima[name] = channel_max if name not in maxima else np.maximum(maxima[name], channel_max)
    except ObservationError as exc:
        raise ExportError(
            f"ONNX Runtime could not run the model on the calibration images for cross-layer equalization "
            f"({exc.reason}); check that the images are preprocessed for this model"
        ) from None
    return maxima


def _scales(channel_max: np.ndarray, alpha: float) -> np.ndarray:
    """``(R / r_c) ** alpha`` per channel; 1 for a channel that never fired (r_c == 0), which has no range to
    equalize and whose scale would be infinite."""
    r = np.asarray(channel_max, dtype=np.float64)
    scale = np.ones_like(r)
    live = np.isfinite(r) & (r > 0)
    if live.any():
        scale[live] = (r[live].max() / r[live]) ** alpha
    return scale


class _WeightEditor:
    """Accumulates per-channel scales of Conv weights and biases in float64, then writes them back.

    An initializer that another node (or a subgraph, or a graph output) also reads is first given a private
    copy under a fresh name, so the rescaling reaches only the node it is meant for.
    """

    def __init__(self, model: onnx.ModelProto, index: GraphIndex) -> None:
        self._model = model
        self._index = index
        self._names = NameAllocator(model)
        self._readers = tensor_reads(model.graph)
        self._arrays: dict[str, np.ndarray] = {}

    def scale(self, node: onnx.NodeProto, slot: int, scale: np.ndarray, axis: int) -> None:
        """Multiply ``node.input[slot]`` (if present) by ``scale`` along ``axis``."""
        if len(node.input) <= slot or not node.input[slot]:
            return
        name = node.input[slot]
        if name not in self._arrays:
            source = self._index.initializers[name]
            if self._readers[name] > 1:
                self._readers[name] -= 1
                name = self._names.fresh(f"{name}__equalized")
                node.input[slot] = name
            self._arrays[name] = numpy_helper.to_array(source).astype(np.float64)
        shape = [1] * self._arrays[name].ndim
        shape[axis] = -1
        self._arrays[name] = self._arrays[name] * scale.reshape(shape)

    def write_back(self) -> None:
        graph = self._model.graph
        for init in graph.initializer:
            if init.name in self._arrays:
                init.CopyFrom(numpy_helper.from_array(self._arrays.pop(init.name).astype(np.float32), init.name))
        # What is left are the private copies of shared initializers.
        for name, array in self._arrays.items():
            graph.initializer.append(numpy_helper.from_array(array.astype(np.float32), name))
        self._arrays = {}


def _label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name or node.output[0]!r}"


def _spread(scale: np.ndarray) -> str:
    return f"scales {scale.min():.3g}..{scale.max():.3g}" if not math.isclose(scale.max(), 1.0) else "unchanged"
