"""Lower an exported ONNX graph (NCHW) to edgekit's TFLite graph, NHWC where the math allows.

Every ONNX tensor has a layout: a permutation between its ONNX axes and its IR tensor's axes
(``lowering_utils``). 4-D activations start NHWC, so convolutions read them with their weights permuted,
never the activations; other tensors start in their ONNX layout. A Transpose only changes the recorded
layout (no op); Reshape/Flatten/Squeeze/Unsqueeze reshape in the current layout when the axes they merge or
split are contiguous and in order there; elementwise ops bring their operands to one layout; spatial ops
(``NHWC_OPS``) read NHWC. A TRANSPOSE is inserted only where none of that applies, and each one is counted
in ``layout_transposes``. Graph outputs come out NHWC when 4-D (a TFLite file is NHWC) and in their ONNX
layout otherwise. Before lowering, three ONNX rewrites shape the graph for this: ``passes.fuse_gelu``,
``reshape_before_split`` and ``collapse_reshape_chains``; while lowering, a Split or Gather whose pieces all
reach MatMuls wanting one layout (attention's q, k, v) is transposed once before it (``layout_demand``).

An input normalisation folded into the first convolution (``passes.fold_input_normalization``) makes the
file take pixels: its float prologue is no op here, and its padding a ``PIXEL_FILL`` pseudo-op that
``pixel_input.lower_pixel_fills`` turns into mean-pixel border strips.

Channel shuffles (canonical Reshape -> Transpose -> Reshape after edgekit's ONNX passes) become one
``SHUFFLE`` pseudo-op that ``edgekit.export.tflite.shuffle`` replaces with real TFLite ops. Nodes whose
inputs are all constants are evaluated here (shape arithmetic onnxsim left). Every node that cannot be
lowered is collected, and one ExportError lists them all.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper

from edgekit.errors import ExportError
from edgekit.export.passes.fuse_gelu import fuse_gelu
from edgekit.export.tflite.collapse_reshape_chains import collapse_reshape_chains
from edgekit.export.tflite.fold_add_into_bias import fold_add_into_bias
from edgekit.export.tflite.fold_scale_into_next_conv import fold_scale_into_next_conv
from edgekit.export.tflite.ir import Graph, Op, Origin
from edgekit.export.tflite.lower_pointwise import PointwiseOps
from edgekit.export.tflite.lower_spatial import SpatialOps
from edgekit.export.tflite.lower_tensor import TensorOps
from edgekit.export.tflite.lowering_utils import (  # noqa: F401  (re-exported)
    NCHW_TO_NHWC_AXIS,
    NHWC,
    default_perm,
    identity,
    moves_only_unit_axes,
    permuted,
    to_nhwc,
    transpose_between,
)
from edgekit.export.tflite.lowering_utils import attrs as _attrs
from edgekit.export.tflite.lowering_utils import clean as _clean
from edgekit.export.tflite.reshape_before_split import reshape_before_split

#: ONNX ops whose TFLite form reads its first input NHWC: a 4-D input in another layout is transposed first.
NHWC_OPS = frozenset({
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "Resize",
    "Upsample", "Pad", "BatchNormalization", "InstanceNormalization", "DepthToSpace", "SpaceToDepth",
})


class UnsupportedOp(ExportError):
    """One ONNX node the lowering has no TFLite form for; the driver collects them all."""

    def __init__(self, node, why: str = "") -> None:
        self.op_type = node.op_type
        self.node_name = node.name or node.output[0]
        self.why = why
        detail = f" ({why})" if why else ""
        super().__init__(f"ONNX op {self.op_type} (node {self.node_name}) has no TFLite lowering in edgekit{detail};"
                         " --format onnx still works")

    @property
    def line(self) -> str:
        return f"{self.op_type} (node {self.node_name})" + (f": {self.why}" if self.why else "")


class _Lowering(TensorOps, SpatialOps, PointwiseOps):
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in [*self.model.graph.input, *self.model.graph.value_info, *self.model.graph.output]:
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
        self.g = Graph()
        self.names: dict[str, str] = {}  # ONNX tensor -> IR tensor
        self.perms: dict[str, tuple[int, ...]] = {}  # ONNX tensor -> layout of its IR tensor
        self.ir_perms: dict[str, tuple[int, ...]] = {}  # IR tensor -> layout it was made in
        self.views: dict[tuple[str, tuple[int, ...]], str] = {}  # (ONNX tensor, layout) -> IR tensor
        self.ir_names: dict[str, list[str]] = {}  # IR tensor -> the ONNX tensors bound to it
        self.nonnegative: set[str] = set()  # IR tensors known >= 0 (after a ReLU), for max-pool padding
        self.origins: dict[str, Origin] = {}  # IR tensor -> its values in ONNX terms, set by a handler
        self.layout_transposes = 0
        self.node = None  # the node being lowered
        self.onnx_users: dict[str, int] = {}
        self.readers: dict[str, list] = {}  # ONNX tensor -> the nodes that read it
        for node in self.model.graph.node:
            for name in node.input:
                self.onnx_users[name] = self.onnx_users.get(name, 0) + 1
                self.readers.setdefault(name, []).append(node)
        self.onnx_outputs = {o.name for o in self.model.graph.output}
        self._readers = dict(self.onnx_users)  # as in the ONNX graph; onnx_users adds those of aliases

    # --- helpers ------------------------------------------------------------------------------------

    def onnx_shape(self, name: str) -> tuple[int, ...]:
        if name in self.consts:
            return tuple(self.consts[name].shape)
        if name not in self.shapes:
            raise ExportError(f"tensor {name!r} has no static shape; export with a fixed --input-shape")
        return self.shapes[name]

    def perm_of(self, onnx_name: str) -> tuple[int, ...]:
        """The layout of ``onnx_name``'s IR tensor; for a tensor not yet defined, the one ``define`` gives."""
        if onnx_name in self.perms:
            return self.perms[onnx_name]
        if onnx_name in self.names and self.names[onnx_name] in self.ir_perms:
            return self.ir_perms[self.names[onnx_name]]
        if onnx_name in self.consts:
            return default_perm(len(self.onnx_shape(onnx_name)))
        return self._inherited_perm(onnx_name)

    def _inherited_perm(self, onnx_name: str) -> tuple[int, ...]:
        # An op's output takes the layout of its first activation input of the same rank (elementwise ops
        # keep layouts); otherwise the default one.
        rank = len(self.onnx_shape(onnx_name))
        if self.node is not None and onnx_name in self.node.output:
            for name in self.node.input:
                if name and name in self.names and name not in self.consts and len(self.onnx_shape(name)) == rank:
                    return self.perm_of(name)
        return default_perm(rank)

    def define(self, onnx_name: str, dtype: str = "float32", perm=None) -> str:
        """A new IR tensor for ONNX tensor ``onnx_name`` in layout ``perm`` (default: the inherited one)."""
        perm = tuple(perm) if perm is not None else self.perm_of(onnx_name)
        ir = self.g.add_tensor(_clean(onnx_name), permuted(self.onnx_shape(onnx_name), perm), dtype)
        self.bind(onnx_name, ir, perm)
        return ir

    def bind(self, onnx_name: str, ir: str, perm) -> None:
        """Record that IR tensor ``ir`` holds ``onnx_name`` in layout ``perm``."""
        perm = tuple(perm)
        group = self.ir_names.setdefault(ir, [])
        if onnx_name not in group:
            group.append(onnx_name)
        if len(group) > 1:
            # ONNX tensors sharing one IR tensor (a free Transpose, a no-op Reshape) share its readers: a
            # handler that fuses into the producer when "this node is the sole reader" must see them all.
            readers = sum(self._readers.get(n, 0) for n in group) - (len(group) - 1)
            for n in group:
                self.onnx_users[n] = readers
            if self.onnx_outputs.intersection(group):
                self.onnx_outputs.update(group)
        self.names[onnx_name] = ir
        self.perms[onnx_name] = perm
        self.ir_perms.setdefault(ir, perm)
        self.views[(onnx_name, perm)] = ir

    def use(self, onnx_name: str) -> str:
        if onnx_name in self.names:
            return self.names[onnx_name]
        if onnx_name in self.consts:
            value = self.consts[onnx_name]
            perm = default_perm(value.ndim)
            ir = self.g.add_constant(_clean(onnx_name), _float32(value.transpose(perm)))
            self.bind(onnx_name, ir, perm)
            return ir
        raise ExportError(f"tensor {onnx_name!r} is used before it is computed")

    # --- layout API for op handlers (the layout bookkeeping behind it may change; handlers use only these) ---

    def ir_axis(self, onnx_name: str, axis: int) -> int:
        """The IR axis holding ONNX axis ``axis`` (negative allowed) of tensor ``onnx_name``."""
        rank = len(self.onnx_shape(onnx_name))
        return self.perm_of(onnx_name).index(int(axis) % rank)

    def operand(self, onnx_name: str, like: str) -> str:
        """The IR tensor for ``onnx_name`` laid out to broadcast, as in ONNX, against the IR tensor of ONNX
        tensor ``like`` (an elementwise op's output). Constants of lower rank are right-aligned against
        ``like``'s ONNX shape, then permuted as ``like`` is (e.g. a (C, 1, 1) scale becomes (1, 1, 1, C));
        activations are brought to ``like``'s layout (``broadcastable``)."""
        return self.broadcastable(onnx_name, len(self.onnx_shape(like)), self.perm_of(like))

    def view(self, onnx_name: str, perm) -> str:
        """The IR tensor of ``onnx_name`` in layout ``perm``: the one at hand, a cached one, a permuted copy of a
        constant, a RESHAPE where only axes of size 1 move, else a TRANSPOSE (counted in layout_transposes)."""
        perm = tuple(perm)
        src = self.use(onnx_name)
        have = self.perm_of(onnx_name)
        if have == perm:
            return src
        if (onnx_name, perm) in self.views:
            return self.views[(onnx_name, perm)]
        shape = self.onnx_shape(onnx_name)
        if onnx_name in self.consts:
            out = self.g.add_constant(_clean(onnx_name), _float32(self.consts[onnx_name].transpose(perm)))
        else:
            dtype = self.g.tensors[src].dtype
            out = self.g.add_tensor(src + "_" + "".join(map(str, perm)), permuted(shape, perm), dtype)
            node = self.node
            if moves_only_unit_axes(shape, have, perm):
                new_shape = permuted(shape, perm)
                self.emit("RESHAPE", [src, self.g.int32_constant("shape", new_shape)], [out], node,
                          new_shape=new_shape)
            else:
                self.emit("TRANSPOSE", [src, self.g.int32_constant("perm", transpose_between(have, perm))], [out],
                          node)
                self.layout_transposes += 1
            if src in self.nonnegative:
                self.nonnegative.add(out)
        self.ir_perms.setdefault(out, perm)
        self.views[(onnx_name, perm)] = out
        return out

    def has_view(self, onnx_name: str, perm) -> bool:
        """True when ``onnx_name`` is at hand in layout ``perm`` at no cost."""
        perm = tuple(perm)
        return onnx_name in self.consts or self.perm_of(onnx_name) == perm or (onnx_name, perm) in self.views

    def nhwc_input(self, onnx_name: str) -> str:
        """Make the 4-D ``onnx_name`` NHWC for the ops that read it from now on, and return its IR tensor."""
        ir = self.view(onnx_name, NHWC)
        self.names[onnx_name] = ir
        self.perms[onnx_name] = NHWC
        return ir

    def broadcastable(self, onnx_name: str, rank: int, perm) -> str:
        """The IR tensor of ``onnx_name`` (rank <= ``rank``) that broadcasts, as in ONNX, against a rank-``rank``
        IR tensor in layout ``perm``: its ONNX shape is right-aligned (leading 1s), then laid out as ``perm``.
        Scalars and one-element tensors stay scalars."""
        shape = self.onnx_shape(onnx_name)
        perm = tuple(perm)
        if onnx_name in self.consts:
            value = self.consts[onnx_name]
            if value.size == 1 and onnx_name not in self.names:
                key = (onnx_name, ())
                if key not in self.views:
                    self.views[key] = self.g.add_constant(_clean(onnx_name), _float32(value.reshape(())))
                return self.views[key]
            if (onnx_name, ("b",) + perm) not in self.views:
                full = value.reshape((1,) * (rank - value.ndim) + value.shape).transpose(perm)
                self.views[(onnx_name, ("b",) + perm)] = self.g.add_constant(_clean(onnx_name), _float32(full))
            return self.views[(onnx_name, ("b",) + perm)]
        if len(shape) == rank:
            return self.view(onnx_name, perm)
        # a lower-rank activation: its ONNX layout, reshaped to rank ``rank``, then laid out as ``perm``
        lead = rank - len(shape)
        full = (1,) * lead + tuple(shape)
        src = self.view(onnx_name, identity(len(shape)))
        target = permuted(full, perm)
        if not moves_only_unit_axes(full, identity(rank), perm):
            mid = self.g.add_tensor(src + "_bcast", full, self.g.tensors[src].dtype)
            self.emit("RESHAPE", [src, self.g.int32_constant("shape", full)], [mid], self.node, new_shape=full)
            out = self.g.add_tensor(src + "_bcast", target, self.g.tensors[src].dtype)
            self.emit("TRANSPOSE", [mid, self.g.int32_constant("perm", perm)], [out], self.node)
            self.layout_transposes += 1
            return out
        out = self.g.add_tensor(src + "_bcast", target, self.g.tensors[src].dtype)
        self.emit("RESHAPE", [src, self.g.int32_constant("shape", target)], [out], self.node, new_shape=target)
        return out

    def emit(self, kind: str, inputs: list[str], outputs: list[str], node, **options) -> Op:
        op = Op(kind, inputs, outputs, options, name=node.name if node is not None else "")
        self.g.ops.append(op)
        return op

    def unsupported(self, node, why: str = "") -> ExportError:
        return UnsupportedOp(node, why)

    # --- driver -------------------------------------------------------------------------------------

    def run(self, collect: list[UnsupportedOp] | None = None) -> Graph:
        """Lower every node. Unsupported nodes are appended to ``collect`` (their outputs get placeholder
        tensors so the rest of the graph is still checked); without ``collect``, one ExportError lists them."""
        from edgekit.export.passes import find_channel_shuffles

        failures: list[UnsupportedOp] = [] if collect is None else collect
        graph = self.model.graph
        for inp in graph.input:
            if inp.name in self.consts:
                continue
            ir = self.define(inp.name)
            self.g.inputs.append(ir)
        shuffles = {m.nodes[0]: m for m in find_channel_shuffles(self.model) if m.canonical}
        skip: set[str] = set(self._lower_pixel_prologue())
        tainted: set[str] = set()  # ONNX tensors computed from an unsupported node
        for node in graph.node:
            if node.name in skip:
                continue
            self.node = node
            if node.op_type == "Constant":
                self.consts[node.output[0]] = _constant_value(node)
                continue
            if self._fold_constant(node):
                continue
            if node.name in shuffles and self.perm_of(shuffles[node.name].input) == NHWC:
                match = shuffles[node.name]
                skip.update(match.nodes)
                out = self.define(match.outputs[0], perm=NHWC)
                self.emit("SHUFFLE", [self.use(match.input)], [out], node, groups=match.groups)
                if self.names[match.input] in self.nonnegative:
                    self.nonnegative.add(out)
                continue
            try:
                handler = getattr(self, f"op_{node.op_type}", None)
                if handler is None:
                    raise self.unsupported(node)
                if node.op_type in NHWC_OPS and node.input[0] in self.names and len(
                        self.onnx_shape(node.input[0])) == 4:
                    self.nhwc_input(node.input[0])
                handler(node)
                self._settle_aliases(node)
            except UnsupportedOp as exc:
                failures.append(exc)
                self._placeholders(node)
                tainted.update(node.output)
            except ExportError:
                if not tainted.intersection(node.input):
                    raise
                self._placeholders(node)
                tainted.update(node.output)
            except Exception as exc:  # a form of the op the handler does not expect: listed like the others
                if not tainted.intersection(node.input):
                    failures.append(UnsupportedOp(node, f"unexpected form: {exc.__class__.__name__}: {exc}"))
                self._placeholders(node)
                tainted.update(node.output)
        self.node = None
        if failures and collect is None:
            raise ExportError(unsupported_message(failures))
        for out in graph.output:
            name = self.view(out.name, default_perm(len(self.onnx_shape(out.name))))
            self.g.outputs.append(name)
        self.g.remove_unused()
        self._record_origins()
        self._name_outputs_as_onnx(graph)
        return self.g

    def _record_origins(self) -> None:
        """Give every activation of the graph the ONNX tensor that holds its values (``Tensor.origin``): the one
        a handler said, else the last ONNX tensor in graph order mapped to it (an activation fused into its
        producer maps its output to the producer's tensor, which then holds the activation's values), else
        one bound to it, else the tensor it is a layout view of. Tensors of a decomposed op (a norm's variance)
        have none unless their handler gave one."""
        graph = self.model.graph
        order = [i.name for i in graph.input] + [o for node in graph.node for o in node.output if o]
        computed = set(order) - set(self.consts)
        found = dict(self.origins)
        latest: dict[str, str] = {}
        for name in order:
            if name in computed and name in self.names:
                latest[self.names[name]] = name
        for ir, name in latest.items():
            found.setdefault(ir, Origin(name))
        for ir, group in self.ir_names.items():
            names = [n for n in group if n in computed]
            if names and ir not in found:
                found[ir] = Origin(names[-1])
        for (onnx_name, perm), ir in self.views.items():
            if onnx_name in computed and perm and perm[0] != "b" and ir not in found:
                found[ir] = Origin(onnx_name)
        for ir, origin in found.items():
            tensor = self.g.tensors.get(ir)
            if tensor is not None and not tensor.is_constant and tensor.origin is None:
                tensor.origin = origin

    def _lower_pixel_prologue(self) -> tuple[str, ...]:
        """Map the prologue of ``fold_input_normalization`` (input -> [Pad] -> Mul(std) -> Add(mean) -> the
        pixels) to a file that takes the pixels: the IR input is the pixel image, the Pad a ``PIXEL_FILL``
        pseudo-op (its border of mean pixels, which ``pixel_input.lower_pixel_fills`` turns into real ops
        once channel shuffles are lowered), Mul/Add no op. Returns the prologue's node names."""
        from edgekit.export.passes.fold_input_normalization import PIXELS, pixel_prologue

        prologue = pixel_prologue(self.model)
        if prologue is None:
            return ()
        x = self.names[self.model.graph.input[0].name]
        self.origins[x] = Origin(PIXELS)  # the pixels, not the ONNX input (normalised)
        top, left, bottom, right = prologue.pads
        if not any(prologue.pads):
            self.bind(PIXELS, x, NHWC)
            return prologue.nodes
        n, h, w, c = self.g.shape(x)
        padded = self.g.add_tensor(x + "_pixel_fill", (n, h + top + bottom, w + left + right, c))
        self.g.ops.append(Op("PIXEL_FILL", [x], [padded], {"paddings": [[0, 0], [top, bottom], [left, right], [0, 0]],
                                                            "mean": prologue.mean}, prologue.conv))
        self.bind(PIXELS, padded, NHWC)
        return prologue.nodes

    def _name_outputs_as_onnx(self, graph) -> None:
        # Apps look outputs up by name: an output whose IR tensor got another name on the way (a flatten, a
        # layout view) takes the ONNX output's name, unless that tensor is also an input or another output.
        for i, out in enumerate(graph.output):
            want, have = _clean(out.name), self.g.outputs[i]
            if have != want and want not in self.g.tensors and have not in self.g.inputs \
                    and self.g.outputs.count(have) == 1:
                self.g.rename(have, want)

    def _settle_aliases(self, node) -> None:
        # A handler that maps an output onto an input's IR tensor (a fused activation) gives it that input's
        # layout.
        for out in node.output:
            if out and out in self.names and out not in self.perms:
                same = [i for i in node.input if i in self.names and self.names[i] == self.names[out]]
                perm = self.perm_of(same[0]) if same else self.ir_perms.get(
                    self.names[out], default_perm(len(self.onnx_shape(out))))
                self.perms[out] = perm
                self.views[(out, perm)] = self.names[out]

    def _placeholders(self, node) -> None:
        for out in node.output:
            if out and out not in self.names and out in self.shapes:
                self.define(out)

    def _fold_constant(self, node) -> bool:
        """Evaluate ``node`` now when all its inputs are constants (or it reads only a static shape)."""
        if node.op_type == "Shape" and (node.input[0] in self.shapes or node.input[0] in self.consts):
            a = _attrs(node)
            shape = np.array(self.onnx_shape(node.input[0]), dtype=np.int64)
            self.consts[node.output[0]] = shape[a.get("start", 0):a.get("end", len(shape))]
            return True
        if node.op_type == "Size" and node.input[0] in self.shapes:
            self.consts[node.output[0]] = np.array(int(np.prod(self.onnx_shape(node.input[0]))), dtype=np.int64)
            return True
        inputs = [i for i in node.input if i]
        if not inputs or not all(i in self.consts and i not in self.names for i in inputs):
            return False
        from onnx.reference import ReferenceEvaluator

        opset = [onnx.helper.make_opsetid(o.domain, o.version) for o in self.model.opset_import]
        sub = onnx.helper.make_model(
            onnx.helper.make_graph(
                [node], "fold", [],
                [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output if o],
                [numpy_helper.from_array(self.consts[i], i) for i in dict.fromkeys(inputs)]),
            opset_imports=opset)
        try:
            values = ReferenceEvaluator(sub).run(None, {})
        except Exception:
            return False
        for name, value in zip([o for o in node.output if o], values, strict=True):
            self.consts[name] = np.asarray(value)
        return True

    # --- ops ----------------------------------------------------------------------------------------

    def op_Identity(self, node) -> None:
        self.alias(node.output[0], node.input[0])

    def op_Dropout(self, node) -> None:  # inference: the input itself (the mask output is never read)
        if len(node.output) > 1 and node.output[1] and self.onnx_users.get(node.output[1]):
            raise self.unsupported(node, "the dropout mask is read")
        self.alias(node.output[0], node.input[0])

    def alias(self, out: str, src: str) -> None:
        """ONNX tensor ``out`` is ``src``: the same IR tensor and layout, no op."""
        self.bind(out, self.use(src), self.perm_of(src))


def _float32(value: np.ndarray) -> np.ndarray:
    return value.astype(np.float32) if value.dtype == np.float64 else value


def _constant_value(node) -> np.ndarray:
    a = node.attribute[0]
    value = onnx.helper.get_attribute_value(a)
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    dtypes = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64, "value_ints": np.int64}
    return np.array(value, dtype=dtypes.get(a.name))


def unsupported_message(failures: list[UnsupportedOp]) -> str:
    """One line per op type (with its count and every node), after a line saying what works instead."""
    if len(failures) == 1:
        return str(failures[0])
    by_type: dict[str, list[UnsupportedOp]] = {}
    for f in failures:
        by_type.setdefault(f.op_type, []).append(f)
    counts = Counter(f.op_type for f in failures)
    lines = [f"{len(failures)} ONNX nodes have no TFLite lowering in edgekit; --format onnx still works:"]
    for op_type, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        nodes = ", ".join(f.node_name + (f" ({f.why})" if f.why else "") for f in by_type[op_type])
        lines.append(f"  {op_type} x{count}: {nodes}")
    return "\n".join(lines)


def _prepared(model: onnx.ModelProto) -> onnx.ModelProto:
    """The ONNX rewrites the lowering relies on: GELUs fused, attention's per-piece head reshapes moved before
    the split, reshape/transpose chains collapsed."""
    return collapse_reshape_chains(reshape_before_split(fuse_gelu(model).model).model).model


def lowering_source(model: onnx.ModelProto) -> onnx.ModelProto:
    """The ONNX graph ``onnx_to_tflite_graph(model)`` lowers (``model`` after the rewrites above): the graph
    whose tensors the lowered graph's ``Tensor.origin`` names, for calibration to observe."""
    return _prepared(model)


def onnx_to_tflite_graph(model: onnx.ModelProto) -> tuple[Graph, int]:
    """Lower a simplified, shuffle-canonical ONNX model to edgekit's TFLite graph.

    GELUs spelled out in elementwise ops are fused first (``passes.fuse_gelu``) and chains of Reshapes and
    Transposes collapsed (``collapse_reshape_chains``); after lowering, constants next to convolutions join
    their bias or weights (``fold_add_into_bias``, ``fold_scale_into_next_conv``). Returns the graph and the
    number of layout TRANSPOSEs it needed (0 for pure CNNs such as ShuffleNetV2).
    Raises ExportError listing every node that cannot be lowered (grouped by op type), not only the first.
    """
    lowering = _Lowering(_prepared(model))
    graph = lowering.run()
    fold_add_into_bias(graph)
    fold_scale_into_next_conv(graph)
    return graph, lowering.layout_transposes


def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """A dry run of the lowering: one line per ONNX node with no TFLite lowering ("Erf (node /Erf)"), empty
    when the whole model lowers. Raises ExportError only for problems of the whole model (no static shapes)."""
    failures: list[UnsupportedOp] = []
    _Lowering(_prepared(model)).run(collect=failures)
    return [f.line for f in failures]
