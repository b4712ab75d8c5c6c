"""The paper's cost model: multiply-adds and memory access cost (MAC) of one op from its shapes.

Every front end (PyTorch trace, ONNX file, TFLite file) describes its ops as ``OpNode``s; ``layer_cost``
turns one into a ``LayerCost``. The formulas are those of ShuffleNetV2 (Ma et al., ECCV 2018), section 2:

- a convolution reads its input, writes its output and reads its weights once: for a 1x1 convolution
  ``MAC = hw(c1 + c2) + c1*c2/g`` and ``mult-adds = hw*c1*c2/g``;
- an element-wise op (ReLU, Add, an unfolded BatchNorm ...) has no mult-adds and accesses the tensors it
  reads and writes;
- data movement (concat, split, slice, transpose, pad) and pooling likewise: every op the graph really
  has reads its inputs and writes its outputs, so a shuffle costs what its exported ops cost. Reshapes
  (and flatten/squeeze) are views that runtimes hand on without copying: listed, with no memory access.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgekit.analysis.results import LayerCost

#: Kinds with mult-adds (the paper's FLOPs).
COMPUTE_KINDS = ("conv1x1", "conv", "group_conv", "depthwise_conv", "fc")
#: Kinds that only move data.
MOVEMENT_KINDS = ("concat", "split", "slice", "transpose", "reshape", "pad")


@dataclass
class OpNode:
    """One op as a front end sees it: activation shapes, weight shape, and graph edges (tensor keys).

    ``weight_shape`` is the convolution/FC weight in the source's layout; ``in_channels``,
    ``out_channels``, ``groups``, ``kernel`` and ``out_hw`` are filled for convolutions so the cost and
    the findings never depend on layout. ``inputs``/``outputs`` name activation tensors for the graph
    structure; constants are left out.
    """

    name: str
    op_type: str
    kind: str
    input_shapes: list[tuple[int, ...]]
    output_shapes: list[tuple[int, ...]]
    params: int = 0
    weight_elements: int = 0
    in_channels: int | None = None
    out_channels: int | None = None
    groups: int | None = None
    kernel: tuple[int, int] | None = None
    out_hw: int | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    note: str | None = None


def elements(shape) -> int:
    """Number of elements of a shape; unknown (None or negative) dimensions count as 1."""
    return int(math.prod(int(d) if d is not None and int(d) > 0 else 1 for d in shape))


def conv_kind(in_channels: int, out_channels: int, groups: int, kernel: tuple[int, int]) -> str:
    """``depthwise_conv`` (one group per input channel), ``group_conv``, ``conv1x1`` or ``conv``."""
    if groups > 1 and groups == in_channels:
        return "depthwise_conv"
    if groups > 1:
        return "group_conv"
    return "conv1x1" if tuple(kernel) == (1, 1) else "conv"


def conv_mult_adds(out_elements: int, in_channels: int, groups: int, kernel: tuple[int, int]) -> int:
    """Multiply-adds of a convolution: output elements x (input channels per group) x kernel area."""
    return int(out_elements * (in_channels // max(groups, 1)) * kernel[0] * kernel[1])


def conv1x1_mac(hw: int, c1: int, c2: int, groups: int = 1) -> float:
    """The paper's MAC of a 1x1 (group) convolution on an h x w map: ``hw(c1 + c2) + c1*c2/g``."""
    return hw * (c1 + c2) + c1 * c2 / groups


def g1_lower_bound(hw: int, mult_adds: float) -> float:
    """The paper's lower bound on a 1x1 convolution's MAC for its FLOPs B: ``2*sqrt(hw*B) + B/hw``.

    Reached when input and output channels are equal (the arithmetic-geometric mean inequality).
    """
    return 2.0 * math.sqrt(hw * mult_adds) + mult_adds / hw


def layer_cost(node: OpNode) -> LayerCost:
    """The ``LayerCost`` of one op: mult-adds, memory access (elements) and their ratio."""
    read = sum(elements(s) for s in node.input_shapes)
    written = sum(elements(s) for s in node.output_shapes)
    mult_adds = 0
    if node.kind in ("folded", "reshape"):
        # A reshape is a view: PyTorch, ONNX Runtime and LiteRT hand the same buffer on without copying.
        memory = 0
    else:
        memory = read + written + node.weight_elements
    if node.kind in ("conv1x1", "conv", "group_conv", "depthwise_conv") and node.kernel and node.in_channels:
        mult_adds = conv_mult_adds(written, node.in_channels, node.groups or 1, node.kernel)
    elif node.kind == "fc" and node.in_channels:
        mult_adds = written * node.in_channels
    return LayerCost(
        name=node.name,
        op_type=node.op_type,
        kind=node.kind,
        input_shapes=[list(s) for s in node.input_shapes],
        output_shapes=[list(s) for s in node.output_shapes],
        params=int(node.params),
        mult_adds=int(mult_adds),
        memory_access=int(memory),
        intensity=(mult_adds / memory) if memory else None,
        in_channels=node.in_channels,
        out_channels=node.out_channels,
        groups=node.groups,
        kernel=list(node.kernel) if node.kernel else None,
        out_hw=node.out_hw,
        note=node.note,
    )


#: Op families for comparing predicted with measured shares: runtimes name ops differently and some do
#: not tell a depthwise from a dense convolution, so both sides are mapped onto these.
FAMILY_OF_KIND = {
    "conv1x1": "conv", "conv": "conv", "group_conv": "conv", "depthwise_conv": "depthwise_conv",
    "fc": "fc", "elementwise": "elementwise", "pool": "pool", "concat": "concat", "split": "split/slice",
    "slice": "split/slice", "transpose": "transpose", "reshape": "reshape", "pad": "pad", "folded": "folded",
    "other": "other",
}

_PROFILE_FAMILIES = {
    "conv": ("conv", "fusedconv", "conv_2d", "convinteger", "qlinearconv", "nhwcconv"),
    "depthwise_conv": ("depthwise_conv_2d",),
    "fc": ("gemm", "matmul", "fully_connected", "fusedgemm", "fusedmatmul", "linear"),
    "elementwise": ("relu", "add", "mul", "sub", "div", "clip", "sigmoid", "hardswish", "hard_swish", "tanh",
                    "batchnormalization", "relu6", "leaky_relu", "leakyrelu", "prelu", "logistic", "sum", "erf",
                    "quantize", "dequantize", "quantizelinear", "dequantizelinear"),
    "pool": ("maxpool", "averagepool", "globalaveragepool", "globalmaxpool", "reducemean", "max_pool_2d",
             "average_pool_2d", "mean"),
    "concat": ("concat", "concatenation"),
    "split/slice": ("split", "split_v", "slice", "strided_slice", "gather"),
    "transpose": ("transpose",),
    "reshape": ("reshape", "flatten", "squeeze", "unsqueeze", "identity"),
    "pad": ("pad", "padv2"),
}
_FAMILY_OF_PROFILE_OP = {name: family for family, names in _PROFILE_FAMILIES.items() for name in names}


def profile_family(op_type: str) -> str:
    """The op family of a profiled op type (``Conv``, ``FusedConv``, ``CONV_2D``, ``ADD`` ...); else ``other``."""
    return _FAMILY_OF_PROFILE_OP.get(op_type.strip().lower(), "other")
