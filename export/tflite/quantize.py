"""Full-integer int8 post-training quantization of edgekit's NHWC graph, following the TFLite int8 spec.

Activations are asymmetric int8 per tensor; CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED weights are
symmetric int8 per output channel with int32 biases. Ops whose TFLite int8 kernels (and XNNPACK's) need
their data inputs and outputs to share one scale and zero point get one: the tensors they connect form
an equivalence class quantized over the union of its members' ranges, which is what TensorFlow's converter
does and why the result has no requantize (QUANTIZE int8 -> int8) ops. Ranges come from
``edgekit.export.tflite.calibrate.onnx_ranges`` (computed on the ONNX graph the TFLite graph was lowered from).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from edgekit.errors import ExportError
from edgekit.export.tflite.delegate_uint8_edges import delegate_uint8_edges
from edgekit.export.tflite.ir import Graph, Op, Quant, Tensor

QMIN, QMAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# Op kind -> indices of its data inputs (the rest are int32 shapes, axes, permutations, paddings, indices).
# Their data inputs and outputs must share quantization: TFLite's int8 kernels for these move or select
# values without rescaling them (or XNNPACK's require equal input and output params); for CONCATENATION a
# mismatch would make the converter insert a requantize op per input.
SHARED_QUANT_OPS: dict[str, tuple[int, ...] | None] = {
    "RESHAPE": (0,),
    "TRANSPOSE": (0,),
    "SPLIT": (1,),
    "SLICE": (0,),
    "STRIDED_SLICE": (0,),
    "GATHER": (0,),  # input 1 holds int32 indices
    "PAD": (0,),
    "PADV2": (0,),  # the pad value (input 2) is quantized with the class params, not part of the range
    "MIRROR_PAD": (0,),
    "RESIZE_NEAREST_NEIGHBOR": (0,),
    "RESIZE_BILINEAR": (0,),  # the int8 kernel interpolates codes: one scale on both sides
    "MAX_POOL_2D": (0,),
    "AVERAGE_POOL_2D": (0,),  # the int8 spec requires it, as TensorFlow's converter does
    "REDUCE_MAX": (0,),
    "REDUCE_MIN": (0,),
    "BROADCAST_TO": (0,),
    "DEPTH_TO_SPACE": (0,),
    "MAXIMUM": None,  # every input: the kernel compares codes
    "MINIMUM": None,
    "CONCATENATION": None,  # every input
}

# Ops whose int8 output has fixed params in the TFLite spec, whatever the calibrated range.
FIXED_OUTPUT_QUANT: dict[str, tuple[float, int]] = {
    "LOGISTIC": (1.0 / 256.0, -128),
    "SOFTMAX": (1.0 / 256.0, -128),
    "TANH": (1.0 / 128.0, 0),
}

# Ops with their own output params (the kernels rescale internally, or look values up in a table built
# for the input and output params: GELU, ELU, EXP, RSQRT, LOG, HARD_SWISH, LEAKY_RELU).
_RESCALING_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "MEAN",
                  "SUM", "ADD", "SUB", "MUL", "SQUARED_DIFFERENCE", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1",
                  "HARD_SWISH", "LEAKY_RELU", "PRELU", "GELU", "ELU", "EXP", "LOG", "RSQRT", "ABS", "NEG", "DIV",
                  "SQRT"}

#: Ops LiteRT has no int8 kernel for, and why.
NO_INT8_KERNEL: dict[str, str] = {
    "POW": "LiteRT has no int8 POW kernel",
}
_XNNPACK_FLOAT = "XNNPACK runs it in float only, so in int8 it would leave the XNNPACK partition"
#: Ops whose int8 kernel is not worth using: LiteRT has one (tested within a few steps of float), but
#: XNNPACK (LiteRT's default CPU delegate) does not, while it runs their float kernel between a DEQUANTIZE
#: and a QUANTIZE inside its partition (measured on LiteRT 2.3: one partition as float, three as int8).
#: MobileNetV3-Small int8, 1 thread, loaded 2-core VM: HARD_SWISH in float 1.65 ms (1 partition, logit
#: cosine 0.9779), in int8 9.12 ms (20 partitions, 0.9783).
XNNPACK_FLOAT_ONLY: dict[str, str] = {kind: _XNNPACK_FLOAT for kind in (
    "DIV", "SQRT", "RSQRT", "EXP", "LOG", "ABS", "NEG", "GELU", "PRELU", "RELU_N1_TO_1", "HARD_SWISH", "SOFTMAX",
    "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "BATCH_MATMUL")}
#: The ops ``quantize_graph`` keeps in float by default, and why: each runs between a DEQUANTIZE and a
#: QUANTIZE (a float island; consecutive ones share one).
FLOAT_OPS: dict[str, str] = {**NO_INT8_KERNEL, **XNNPACK_FLOAT_ONLY}

#: Why ``norm_statistics_ops`` run in float. A norm's variance is a mean of squares whose per-tensor int8 steps
#: are coarse next to the smallest variances (MobileViT-xxs: variances from 0.013 to 18.4, step 0.072), and
#: 1/sqrt of it magnifies that error, and the centered values' own steps, for exactly those tokens.
#: MobileViT-xxs (zoo init, 16 crops, TFLite int8): logit cosine 0.872 with its norms in int8 (RSQRT alone in
#: float), 0.967 with variance to normalized values in float, 0.971 with the centering too; one XNNPACK
#: partition and as many DEQUANTIZE/QUANTIZE each way (the RSQRT islands grow to hold them).
NORM_STATISTICS = ("a norm from its input to the normalized values: int8 steps of the variance erase "
                   "low-variance tokens")
NORM_STATISTICS_KEY = "norm statistics (MEAN/SUB/MUL/ADD)"

# Op kind -> (data input, weight input, bias input, per-channel axis of the weights).
_WEIGHTS = {"CONV_2D": (0, 1, 2, 0), "DEPTHWISE_CONV_2D": (0, 1, 2, 3), "FULLY_CONNECTED": (0, 1, 2, 0),
            "TRANSPOSE_CONV": (2, 1, 3, 0)}

QUANTIZABLE_OPS = frozenset(SHARED_QUANT_OPS) | frozenset(FIXED_OUTPUT_QUANT) | _RESCALING_OPS

IO_TYPES = ("int8", "uint8", "float")


def activation_quant(lo: float, hi: float) -> Quant:
    """Asymmetric int8 params for a tensor observed in ``[lo, hi]``.

    The range is widened to include 0 so that zero (padding, ReLU) is exact, and the zero point is nudged to
    an integer in [-128, 127] the way TensorFlow's converter does (``scale = (hi - lo) / 255``). A range of
    width 0 gets scale 1 and zero point -128, as in TensorFlow.
    """
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < np.finfo(np.float64).eps:
        return Quant.per_tensor(1.0, QMIN)
    scale = (hi - lo) / (QMAX - QMIN)
    zero_point = int(np.clip(np.round(QMIN - lo / scale), QMIN, QMAX))
    return Quant.per_tensor(scale, zero_point)


def quantize_per_channel(weights: np.ndarray, axis: int) -> tuple[np.ndarray, Quant]:
    """Symmetric int8 (values in [-127, 127], zero point 0) with one scale per index of ``axis``."""
    w = np.asarray(weights, dtype=np.float64)
    reduce = tuple(i for i in range(w.ndim) if i != axis)
    absmax = np.abs(w).max(axis=reduce) if reduce else np.abs(w)
    scale = np.where(absmax > 0, absmax / 127.0, 1.0)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, Quant(scale.astype(np.float32), np.zeros(len(scale), dtype=np.int64), axis)


def quantize_bias(bias: np.ndarray, input_scale: float, weight_scale: np.ndarray) -> tuple[np.ndarray, Quant]:
    """int32 bias with scale ``input_scale * weight_scale[c]`` and zero point 0, as the int8 spec requires."""
    # The float32 product is what the kernels and XNNPACK compare the bias scale against.
    scale = (np.float32(input_scale) * weight_scale.astype(np.float32)).astype(np.float32)
    q = np.clip(np.round(np.asarray(bias, dtype=np.float64) / scale.astype(np.float64)), INT32_MIN, INT32_MAX)
    return q.astype(np.int32), Quant(scale, np.zeros(len(scale), dtype=np.int64), 0)


def quantize_values(values: np.ndarray, quant: Quant) -> np.ndarray:
    """Float values (non-weight constants) to int8 with per-tensor ``quant``, saturating."""
    scale, zero_point = float(quant.scale[0]), int(quant.zero_point[0])
    q = np.round(np.asarray(values, dtype=np.float64) / scale) + zero_point
    return np.clip(q, QMIN, QMAX).astype(np.int8)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # Deterministic representative: the lexicographically smaller root.
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


def shared_quant_classes(graph: Graph) -> dict[str, list[str]]:
    """Equivalence classes of float tensors that must share quantization, keyed by a representative.

    Every float tensor that is not a weight or bias appears in exactly one class (most in a class of one).
    """
    uf = _UnionFind()
    for name, t in graph.tensors.items():
        if t.dtype == "float32":
            uf.find(name)
    for op in graph.ops:
        if op.kind not in SHARED_QUANT_OPS:
            continue
        for x in _shared_inputs(op):
            for y in op.outputs:
                uf.union(x, y)
    classes: dict[str, list[str]] = {}
    for name in uf.parent:
        classes.setdefault(uf.find(name), []).append(name)
    return classes


def _shared_inputs(op: Op) -> list[str]:
    indices = SHARED_QUANT_OPS[op.kind]
    if indices is None:
        return [n for n in op.inputs if n]
    return [op.inputs[i] for i in indices if i < len(op.inputs) and op.inputs[i]]


def quantize_graph(
    graph: Graph,
    ranges: dict[str, tuple[float, float]],
    *,
    io: str = "int8",
    float_ops: Mapping[str, str] = FLOAT_OPS,
    float_nodes: Collection[str] = (),
) -> Graph:
    """A full-integer int8 copy of the fp32 ``graph``; ``graph`` itself is left untouched.

    ``ranges`` maps every non-constant float tensor to its calibrated ``(min, max)``. ``io="int8"`` makes
    the model's input and output tensors int8 (their params are in ``tensors[name].quant``); ``io="uint8"``
    makes them uint8 (same scales, zero points + 128) with one exact QUANTIZE at each edge; ``io="float"``
    keeps them float32 with one QUANTIZE after the input and one DEQUANTIZE before each output. Inputs after
    the first (a feature vector, a mask beside the image) are float32 with a QUANTIZE whatever ``io``. Int32
    constants (shapes, axes, permutations, paddings) are kept as they are. Weights and biases are mapped as
    they are: bias correction of their rounding happens before, on the fp32 ONNX graph
    (``weight_rounding.correct_weight_rounding``, run by ``ptq_steps.prepare_model``).

    Ops in ``float_ops`` (kind -> why; default ``FLOAT_OPS``, for XNNPACK; ``NO_INT8_KERNEL`` for LiteRT's
    builtin kernels alone) run in float: a DEQUANTIZE in front of and a QUANTIZE behind each run of them
    (``int8_plan`` says which), and so do the ops that compute a norm's variance and apply its reciprocal root
    (``norm_statistics_ops``). ``float_nodes`` names single ops to keep in float the same way, whatever their
    kind, by their first output tensor (mixed precision: ``mixed_precision`` keeps the sensitive first
    layers of BatchNorm networks in float; their weights and biases stay float). Raises ``ExportError``
    listing every op kind with no int8 mapping, for a float tensor without a calibrated range, a
    ``float_nodes`` name no op produces, or a bad ``io``.
    """
    if io not in IO_TYPES:
        raise ExportError(f"unknown int8 io type {io!r}; choose one of {', '.join(IO_TYPES)}")
    int8_plan(graph, float_ops)
    made = {op.outputs[0] for op in graph.ops if op.outputs}
    unknown = sorted(set(float_nodes) - made)
    if unknown:
        raise ExportError(f"float_nodes names tensors no op produces first: {', '.join(unknown[:3])}; name each "
                          "op by its first output tensor")
    float_nodes = set(float_nodes) | {op.outputs[0] for op in norm_statistics_ops(graph)}
    g = copy.deepcopy(graph)
    _square_as_mul(g)
    # by identity: _isolate_float_ops renames a graph output that a float op makes
    in_float = {id(op) for op in g.ops if op.kind in float_ops or op.outputs and op.outputs[0] in float_nodes}
    floating, ranges = _isolate_float_ops(g, ranges, in_float, keep_float_outputs=io == "float")
    weights = _weight_inputs(g)
    pad_values = {op.inputs[2] for op in g.ops if op.kind == "PADV2" and len(op.inputs) > 2 and op.inputs[2]}

    # Params per class: fixed by the spec where a member is a fixed-output op's result, else the union range.
    producers = g.producers()
    ranges = _ranges_that_reach_the_output(g, ranges, floating)
    ranges = _addends_at_their_partners_scale(g, ranges, weights)
    for members in shared_quant_classes(g).values():
        members = [m for m in members if m not in weights and m not in pad_values and m not in floating]
        if not members:
            continue
        # A PADV2 output's observed range holds its pad value (-FLT_MAX for max-pool padding), which is meant
        # to saturate to the lowest code, not to stretch the scale: its input's range speaks for it.
        observed = [m for m in members if m not in producers or producers[m].kind != "PADV2"] or members
        quant = _class_quant(g, observed, ranges, producers)
        for name in members:
            t = g.tensors[name]
            if t.is_constant:
                t.data = quantize_values(t.data, quant)
            t.dtype, t.quant = "int8", copy.deepcopy(quant)

    for op in g.ops:
        if id(op) in in_float:
            continue
        if op.kind == "PADV2" and op.inputs[2:3] and op.inputs[2]:
            # Padding with the input's params: -FLT_MAX (max-pool padding) becomes -128, as in TensorFlow.
            quant = g.tensors[op.inputs[0]].quant
            value = graph.tensors[op.inputs[2]].data
            q = quantize_values(value, quant)
            op.inputs[2] = g.add_constant(op.inputs[2] + "_int8", q, copy.deepcopy(quant))
        elif op.kind in _WEIGHTS:
            _quantize_weights(g, op, graph)
    _drop_unused_tensors(g)

    g.ops = [_float_input(g, i) for i in range(1, len(g.inputs)) if g.tensors[g.inputs[i]].dtype != "float32"] + g.ops
    if io == "float":
        _add_float_io(g)
    elif io == "uint8":
        _add_uint8_io(g)
        delegate_uint8_edges(g)
    return g


@dataclass
class Int8Plan:
    """How a graph maps to int8: the ops that stay float (kind -> node names) and why."""

    float_ops: dict[str, list[str]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def note(self) -> str | None:
        """One report line naming every op that runs in float and why, or None when all run in int8."""
        if not self.float_ops:
            return None
        kinds = "; ".join(f"{kind} x{len(nodes)} ({self.reasons[kind]})" for kind, nodes in self.float_ops.items())
        return f"ops kept in float between DEQUANTIZE and QUANTIZE: {kinds}"


def int8_plan(graph: Graph, float_ops: Mapping[str, str] = FLOAT_OPS) -> Int8Plan:
    """Which ops of the fp32 ``graph`` run in float when it is quantized; a check that needs no calibration.

    Raises ``ExportError`` listing every op kind that has neither an int8 mapping nor a float fallback,
    with the nodes that use it.
    """
    missing: dict[str, list[str]] = {}
    floating: dict[str, list[str]] = {}
    for op in graph.ops:
        node = op.name or op.outputs[0]
        if op.kind in float_ops:
            floating.setdefault(op.kind, []).append(node)
        elif op.kind not in QUANTIZABLE_OPS and op.kind != "SQUARE":
            missing.setdefault(op.kind, []).append(node)
    norms = [op.name or op.outputs[0] for op in norm_statistics_ops(graph) if op.kind not in float_ops]
    if norms:
        floating[NORM_STATISTICS_KEY] = norms
    if missing:
        listed = "; ".join(f"{kind} (node{'s' if len(nodes) > 1 else ''} {', '.join(nodes[:3])}"
                           f"{', ...' if len(nodes) > 3 else ''})" for kind, nodes in missing.items())
        raise ExportError(f"no int8 quantization in edgekit for {len(missing)} op kind(s): {listed}; "
                          "export without --int8 (fp32 TFLite) or with --format onnx --int8 instead")
    return Int8Plan(floating, {kind: float_ops.get(kind, NORM_STATISTICS) for kind in floating})


def norm_statistics_ops(graph: Graph) -> list[Op]:
    """The ops of each decomposed norm from its input to the normalized values, in graph order.

    Found from every RSQRT or SQRT whose input is, through ADDs of a constant (epsilon), a MEAN or SUM of a
    square (``SQUARE`` or ``MUL(d, d)``): the centering (``d = SUB(x, MEAN(x))``, where ``d`` is that), the
    square, the reduction, the ADDs, the root itself and the MULs (RSQRT) or DIVs (SQRT) that read the root.
    LayerNorm over the last axis (transformer blocks) and over channels (ConvNeXt) both lower to this chain.
    """
    producers, users = graph.producers(), graph.consumers()
    found: set[int] = set()
    for op in graph.ops:
        if op.kind not in ("RSQRT", "SQRT") or not op.inputs:
            continue
        chain = [op]
        made_by = producers.get(op.inputs[0])
        while made_by is not None and made_by.kind == "ADD" and len(made_by.inputs) == 2:
            data = [n for n in made_by.inputs if not graph.tensors[n].is_constant]
            if len(data) != 1:
                break
            chain.append(made_by)
            made_by = producers.get(data[0])
        if made_by is None or made_by.kind not in ("MEAN", "SUM"):
            continue
        chain.append(made_by)
        square = producers.get(made_by.inputs[0])
        if square is None or not (square.kind == "SQUARE" or square.kind == "MUL"
                                  and square.inputs[0] == square.inputs[1]):
            continue
        chain.append(square)
        center = producers.get(square.inputs[0])
        if center is not None and center.kind == "SUB" and len(center.inputs) == 2:
            mean = producers.get(center.inputs[1])
            if mean is not None and mean.kind == "MEAN" and mean.inputs[0] == center.inputs[0]:
                chain += [center, mean]
        applies = "MUL" if op.kind == "RSQRT" else "DIV"
        found.update(id(o) for o in [*chain, *(u for u in users[op.outputs[0]] if u.kind == applies)])
    return [op for op in graph.ops if id(op) in found]


def _square_as_mul(graph: Graph) -> None:
    """SQUARE has no int8 kernel; ``MUL(x, x)`` computes the same and has one."""
    for op in graph.ops:
        if op.kind == "SQUARE":
            op.kind, op.inputs = "MUL", [op.inputs[0], op.inputs[0]]


def _isolate_float_ops(graph: Graph, ranges: dict, in_float: set[int], *,
                       keep_float_outputs: bool) -> tuple[set[str], dict]:
    """Put every op whose ``id`` is in ``in_float`` between a DEQUANTIZE of its int8 inputs and a QUANTIZE of what
    int8 ops (or, unless ``keep_float_outputs``, the model's outputs) read of its results, in place. Each
    tensor is converted once, so consecutive float ops share one island. Returns the tensors that stay float and
    ``ranges`` extended to the new int8 tensors."""
    chosen = [op for op in graph.ops if id(op) in in_float]
    if not chosen:
        return set(), ranges
    ranges = dict(ranges)
    floating = {out for op in chosen for out in op.outputs}
    chosen_ids = in_float
    users = graph.consumers()
    twins: dict[str, str] = {}  # tensor -> its twin on the other side of the boundary
    ops: list[Op] = []
    for op in graph.ops:
        for i, name in enumerate(op.inputs):
            t = graph.tensors.get(name) if name else None
            if t is None or t.dtype != "float32":
                continue
            if id(op) in chosen_ids and name not in floating:
                if t.is_constant:  # stays float; int8 readers keep the original, to be quantized
                    if all(id(u) in chosen_ids for u in users[name]):
                        floating.add(name)
                        continue
                    twins.setdefault(name, graph.add_constant(name + "_float", t.data))
                    floating.add(twins[name])
                elif name not in twins:
                    twins[name] = graph.add_tensor(name + "_float", t.shape)
                    floating.add(twins[name])
                    ops.append(Op("DEQUANTIZE", [name], [twins[name]], {}, op.name))
                op.inputs[i] = twins[name]
            elif id(op) not in chosen_ids and name in floating:
                if name not in twins:
                    twins[name] = graph.add_tensor(name + "_int8", t.shape)
                    ranges[twins[name]] = ranges[name]
                    ops.append(Op("QUANTIZE", [name], [twins[name]], {}, op.name))
                op.inputs[i] = twins[name]
        ops.append(op)
    graph.ops = ops
    if not keep_float_outputs:
        for name in [n for n in graph.outputs if n in floating]:
            inner = _rename_output(graph, name, "_float")
            floating.discard(name)
            floating.add(inner)
            graph.tensors[name] = Tensor(name, graph.shape(inner), "float32")
            graph.ops.append(Op("QUANTIZE", [inner], [name], {}, "output"))
    return floating, ranges


#: LOGISTIC's int8 output (step 1/256) has the same code for every input beyond ln(255) in magnitude.
LOGISTIC_SATURATION = float(np.log(255.0))
#: Below this, SiLU's output is within 0.015 of 0 (its minimum is -0.278 at -1.28): a SiLU input's range
#: stops here, so that the negative tail of a convolution's output does not coarsen the steps of the
#: positive values SiLU passes on. Measured on an EfficientNet-style net (BN-calibrated weights) simulated
#: in PyTorch with min/max ranges: logit cosine 0.9765 with the full range, 0.9809 (-6), 0.9800 (-3), 0.9678
#: (-2); its TFLite export, whose percentile ranges already trim most of that tail, moves within noise
#: (0.9686 -> 0.9693 on 16 crops).
SILU_INPUT_FLOOR = -6.0


def _ranges_that_reach_the_output(graph: Graph, ranges: dict, floating: set[str]) -> dict:
    """``ranges`` narrowed to what the ops reading a tensor can tell apart: a tensor read only by LOGISTIC
    is clipped to +-``LOGISTIC_SATURATION``; one read only by SiLU (``MUL(x, LOGISTIC(x))``) stops at
    ``SILU_INPUT_FLOOR``. Either way the int8 outputs are as before or closer to float, and the input's
    steps get finer."""
    users = graph.consumers()
    producers = graph.producers()
    narrowed = dict(ranges)
    for name, (lo, hi) in ranges.items():
        readers = users.get(name, [])
        if not readers or name in graph.outputs or name in floating or name not in graph.tensors:
            continue
        if all(op.kind == "LOGISTIC" for op in readers):
            narrowed[name] = (max(lo, -LOGISTIC_SATURATION), min(hi, LOGISTIC_SATURATION))
        elif _is_silu_input(name, readers, producers):
            narrowed[name] = (max(lo, SILU_INPUT_FLOOR), hi)
    return narrowed


def _is_silu_input(name: str, readers: list[Op], producers: dict[str, Op]) -> bool:
    """Whether ``name`` is read by exactly one LOGISTIC and by MULs of itself with that LOGISTIC's output."""
    sigmoids = [op for op in readers if op.kind == "LOGISTIC"]
    if len(sigmoids) != 1:
        return False
    gate = sigmoids[0].outputs[0]
    return all(op is sigmoids[0] or (op.kind == "MUL" and sorted(op.inputs) == sorted([name, gate]))
               for op in readers) and len(readers) > 1


def _weight_inputs(graph: Graph) -> set[str]:
    names: set[str] = set()
    for op in graph.ops:
        if op.kind in _WEIGHTS:
            _, w, b, _ = _WEIGHTS[op.kind]
            names.update(op.inputs[i] for i in (w, b) if i < len(op.inputs) and op.inputs[i])
    return names


def _addends_at_their_partners_scale(graph: Graph, ranges, weights: set[str]) -> dict:
    """``ranges`` plus, for each float constant added to or subtracted from an activation (a norm's epsilon,
    a bias), that activation's range: the constant is then quantized on the activation's scale. On its own
    range a tiny constant (epsilon 1e-6: scale 4e-9) puts the op's input scales 10^6 apart, which XNNPACK's
    int8 ADD/SUB refuse (each such op left its partition: ConvNeXt-atto int8 had 18 partitions); at its
    partner's scale it rounds to what int8 can hold of it anyway."""
    widened = dict(ranges)
    for op in graph.ops:
        if op.kind not in ("ADD", "SUB") or len(op.inputs) != 2:
            continue
        a, b = op.inputs
        for const, partner in ((a, b), (b, a)):
            t = graph.tensors[const]
            if t.is_constant and t.dtype == "float32" and const not in weights and partner in ranges \
                    and not graph.tensors[partner].is_constant:
                lo, hi = widened.get(const, ranges[partner])
                widened[const] = (min(lo, ranges[partner][0]), max(hi, ranges[partner][1]))
    return widened


def _class_quant(graph: Graph, members: list[str], ranges, producers) -> Quant:
    fixed = {FIXED_OUTPUT_QUANT[producers[m].kind] for m in members
             if m in producers and producers[m].kind in FIXED_OUTPUT_QUANT}
    if len(fixed) > 1:
        raise ExportError(f"tensors {', '.join(sorted(members))} must share int8 params but two of them are "
                          "fixed by different ops; export without --int8 instead")
    if fixed:
        scale, zero_point = fixed.pop()
        return Quant.per_tensor(scale, zero_point)
    lo, hi = np.inf, -np.inf
    for name in members:
        t = graph.tensors[name]
        if t.is_constant:
            r = (float(t.data.min()), float(t.data.max())) if t.data.size else (0.0, 0.0)
            if name in ranges:  # a constant addend, widened to its partner's range
                r = (min(r[0], ranges[name][0]), max(r[1], ranges[name][1]))
        elif name in ranges:
            r = ranges[name]
        else:
            raise ExportError(f"tensor {name!r} has no calibrated range; calibrate the same graph that is "
                              "quantized (calibrate.onnx_ranges) before quantize_graph")
        lo, hi = min(lo, r[0]), max(hi, r[1])
    return activation_quant(lo, hi)


def _quantize_weights(graph: Graph, op: Op, original: Graph) -> None:
    """Per-channel int8 weights and an int32 bias for ``op``; float values are read from ``original``."""
    xi, wi, bi, axis = _WEIGHTS[op.kind]
    inputs = op.inputs + [""] * (bi + 1 - len(op.inputs))
    x, w, b = inputs[xi], inputs[wi], inputs[bi]
    if original.tensors[w].data is None:
        raise ExportError(f"{op.kind} (node {op.name or op.outputs[0]}) has non-constant weights; int8 export "
                          "needs constant weights")
    q, wq = quantize_per_channel(original.tensors[w].data, axis)
    inputs[wi] = _constant(graph, w, q, wq)
    bias = original.tensors[b].data if b else np.zeros(len(wq.scale), np.float32)
    qb, bq = quantize_bias(bias, float(graph.tensors[x].quant.scale[0]), wq.scale)
    inputs[bi] = _constant(graph, b or op.outputs[0] + "_bias", qb, bq)
    op.inputs = inputs


def _constant(graph: Graph, name: str, value: np.ndarray, quant: Quant) -> str:
    """Store ``value`` under ``name`` unless an op converted before already stored other values there."""
    t = graph.tensors.get(name)
    if t is not None and t.dtype == "float32":
        t.data, t.dtype, t.quant = value, str(value.dtype), quant
        return name
    if t is not None and t.dtype == str(value.dtype) and np.array_equal(t.data, value) and np.array_equal(
            t.quant.scale, quant.scale):
        return name
    return graph.add_constant(name, value, quant)


def _drop_unused_tensors(graph: Graph) -> None:
    used = set(graph.inputs) | set(graph.outputs)
    for op in graph.ops:
        used.update(n for n in op.inputs if n)
        used.update(op.outputs)
    graph.tensors = {k: v for k, v in graph.tensors.items() if k in used}


def _add_uint8_io(graph: Graph) -> None:
    """uint8 model input/output around the int8 graph (what MediaPipe and Android's image APIs hand over):
    a QUANTIZE after each input and before each output that only moves the zero point by 128, so it is
    exact. XNNPACK (LiteRT 2.3) takes no uint8 <-> int8 QUANTIZE: ``delegate_uint8_edges`` then makes each edge
    ops it runs."""
    head: list[Op] = []
    for i, name in enumerate(graph.inputs):
        t = graph.tensors[name]
        if t.dtype == "float32":  # a further input, quantized inside
            continue
        u = graph.add_tensor(name + "_uint8", t.shape, "uint8", _shifted(t.quant))
        head.append(Op("QUANTIZE", [u], [name], {}, "input"))
        graph.inputs[i] = u
    tail: list[Op] = []
    for name in list(graph.outputs):
        inner = _rename_output(graph, name, "_int8")
        graph.tensors[name] = Tensor(name, graph.shape(inner), "uint8", None, _shifted(graph.tensors[inner].quant))
        tail.append(Op("QUANTIZE", [inner], [name], {}, "output"))
    graph.ops = head + graph.ops + tail


def _rename_output(graph: Graph, name: str, suffix: str) -> str:
    """Give graph output ``name``'s tensor a new internal name (returned), so an edge op can produce the
    output under the model's own name (apps look outputs up by name)."""
    inner = graph.unique(name + suffix)
    graph.rename(name, inner)
    graph.outputs = [name if n == inner else n for n in graph.outputs]  # the edge op's result keeps the name
    return inner


def _shifted(quant: Quant) -> Quant:
    """The uint8 twin of an int8 per-tensor quantization: same scale, zero point + 128."""
    return Quant(np.asarray(quant.scale).copy(), np.asarray(quant.zero_point) + 128, quant.axis)


def _float_input(graph: Graph, i: int) -> Op:
    """Make int8 graph input ``i`` float32 under its own name; returns the QUANTIZE (for the caller to put first)
    that gives its int8 readers the codes."""
    name = graph.inputs[i]
    t = graph.tensors[name]
    q = graph.add_tensor(name + "_int8", t.shape, "int8", copy.deepcopy(t.quant))
    graph.replace_uses(name, q)
    t.dtype, t.quant = "float32", None
    return Op("QUANTIZE", [name], [q], {}, "input")


def _add_float_io(graph: Graph) -> None:
    """Float32 model input/output around the int8 graph: QUANTIZE after each input, DEQUANTIZE before outputs."""
    head = [_float_input(graph, i) for i, name in enumerate(graph.inputs) if graph.tensors[name].dtype != "float32"]
    tail: list[Op] = []
    for name in list(graph.outputs):
        if graph.tensors[name].dtype == "float32":  # computed by a float island
            continue
        inner = _rename_output(graph, name, "_int8")
        graph.tensors[name] = Tensor(name, graph.shape(inner), "float32")
        tail.append(Op("DEQUANTIZE", [inner], [name], {}, "output"))
    graph.ops = head + graph.ops + tail
