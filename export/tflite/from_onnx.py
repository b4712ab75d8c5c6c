"""Lower an exported ONNX graph (NCHW) to edgekit's NHWC TFLite graph, with no layout transposes.

Every 4-D activation becomes NHWC once, at the input; weights are permuted instead of activations, and
axes of Concat/Split/Slice/Reduce are remapped. Channel shuffles (already canonical Reshape -> Transpose
-> Reshape after edgekit's ONNX passes) become one ``SHUFFLE`` pseudo-op that the shuffle lowerings in
``edgekit.export.tflite.shuffle`` replace with real TFLite ops. Explicit PAD is emitted only where
TFLite's SAME padding differs from PyTorch's symmetric padding.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from edgekit.errors import ExportError
from edgekit.export.tflite.ir import Graph, Op
from edgekit.export.tflite.lower_pointwise import PointwiseOps
from edgekit.export.tflite.lower_spatial import SpatialOps
from edgekit.export.tflite.lower_tensor import TensorOps
from edgekit.export.tflite.lowering_utils import NCHW_TO_NHWC_AXIS, to_nhwc  # noqa: F401  (re-exported)
from edgekit.export.tflite.lowering_utils import clean as _clean


class _Lowering(SpatialOps, PointwiseOps, TensorOps):
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        for node in self.model.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in [*self.model.graph.input, *self.model.graph.value_info, *self.model.graph.output]:
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
        self.g = Graph()
        self.names: dict[str, str] = {}  # ONNX tensor -> IR tensor
        self.nhwc: set[str] = set()  # ONNX tensors whose IR tensor is NHWC
        self.nonnegative: set[str] = set()  # IR tensors known >= 0 (after a ReLU), for max-pool padding
        self.layout_transposes = 0
        self.onnx_users: dict[str, int] = {}
        for node in self.model.graph.node:
            for name in node.input:
                self.onnx_users[name] = self.onnx_users.get(name, 0) + 1
        self.onnx_outputs = {o.name for o in self.model.graph.output}

    # --- helpers ------------------------------------------------------------------------------------

    def onnx_shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise ExportError(f"tensor {name!r} has no static shape; export with a fixed --input-shape")
        return self.shapes[name]

    def ir_shape_of(self, name: str) -> tuple[int, ...]:
        shape = self.onnx_shape(name)
        return to_nhwc(shape) if len(shape) == 4 else shape

    def define(self, onnx_name: str, dtype: str = "float32") -> str:
        shape = self.onnx_shape(onnx_name)
        ir = self.g.add_tensor(_clean(onnx_name), to_nhwc(shape) if len(shape) == 4 else shape, dtype)
        self.names[onnx_name] = ir
        if len(shape) == 4:
            self.nhwc.add(onnx_name)
        return ir

    def use(self, onnx_name: str) -> str:
        if onnx_name in self.names:
            return self.names[onnx_name]
        if onnx_name in self.consts:
            value = self.consts[onnx_name]
            if value.ndim == 4:
                value = value.transpose(0, 2, 3, 1)
            ir = self.g.add_constant(_clean(onnx_name), value.astype(np.float32) if value.dtype == np.float64
                                     else value)
            self.names[onnx_name] = ir
            return ir
        raise ExportError(f"tensor {onnx_name!r} is used before it is computed")

    # --- layout API for op handlers (the layout bookkeeping behind it may change; handlers use only these) ---

    def ir_axis(self, onnx_name: str, axis: int) -> int:
        """The IR axis holding ONNX axis ``axis`` (negative allowed) of tensor ``onnx_name``."""
        rank = len(self.onnx_shape(onnx_name))
        axis = int(axis) % rank
        return NCHW_TO_NHWC_AXIS[axis] if rank == 4 else axis

    def operand(self, onnx_name: str, like: str) -> str:
        """The IR tensor for ``onnx_name`` laid out to broadcast, as in ONNX, against the IR tensor of ONNX
        tensor ``like`` (an elementwise op's output). Constants of lower rank are right-aligned against
        ``like``'s ONNX shape, then permuted as ``like`` is (e.g. a (C, 1, 1) scale becomes (1, 1, 1, C))."""
        value = self.consts.get(onnx_name)
        rank = len(self.onnx_shape(like))
        if value is None or onnx_name in self.names or value.ndim in (0, rank) or value.ndim > rank:
            return self.use(onnx_name)
        full = value.reshape((1,) * (rank - value.ndim) + value.shape)
        if rank == 4:
            full = full.transpose(0, 2, 3, 1)
        return self.g.add_constant(_clean(onnx_name), full.astype(np.float32) if full.dtype == np.float64 else full)

    def emit(self, kind: str, inputs: list[str], outputs: list[str], node, **options) -> Op:
        op = Op(kind, inputs, outputs, options, name=node.name if node is not None else "")
        self.g.ops.append(op)
        return op

    def unsupported(self, node, why: str = "") -> ExportError:
        detail = f" ({why})" if why else ""
        return ExportError(
            f"ONNX op {node.op_type} (node {node.name or node.output[0]}) has no TFLite lowering in edgekit{detail};"
            " --format onnx still works"
        )

    # --- driver -------------------------------------------------------------------------------------

    def run(self) -> Graph:
        from edgekit.export.passes import find_channel_shuffles

        graph = self.model.graph
        for inp in graph.input:
            if inp.name in self.consts:
                continue
            ir = self.define(inp.name)
            self.g.inputs.append(ir)
        shuffles = {m.nodes[0]: m for m in find_channel_shuffles(self.model) if m.canonical}
        skip: set[str] = set()
        for node in graph.node:
            if node.name in skip or node.op_type == "Constant":
                continue
            if node.name in shuffles:
                match = shuffles[node.name]
                skip.update(match.nodes)
                out = self.define(match.outputs[0])
                self.emit("SHUFFLE", [self.use(match.input)], [out], node, groups=match.groups)
                if self.names[match.input] in self.nonnegative:
                    self.nonnegative.add(out)
                continue
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                raise self.unsupported(node)
            handler(node)
        for out in graph.output:
            self.g.outputs.append(self.use(out.name))
        self.g.remove_unused()
        return self.g

    # --- ops ----------------------------------------------------------------------------------------

    def op_Identity(self, node) -> None:
        self.names[node.output[0]] = self.use(node.input[0])
        if node.input[0] in self.nhwc:
            self.nhwc.add(node.output[0])


def onnx_to_tflite_graph(model: onnx.ModelProto) -> tuple[Graph, int]:
    """Lower a simplified, shuffle-canonical ONNX model to an NHWC graph.

    Returns the graph and the number of layout transposes it needed (0 for ShuffleNetV2). Raises
    ExportError naming the first op and node that cannot be lowered.
    """
    lowering = _Lowering(model)
    graph = lowering.run()
    return graph, lowering.layout_transposes
