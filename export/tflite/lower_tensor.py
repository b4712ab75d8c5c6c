"""Lowering of tensor-shaped and attention ONNX ops to TFLite, through the recorded layouts.

A mixin of ``from_onnx._Lowering``: handlers ``op_<OnnxType>`` use its ``use``/``define``/``emit`` helpers and
its layout API (``perm_of``, ``view``, ``bind``, ``broadcastable``; layouts are explained in ``lowering_utils``).

Handled here: Transpose (no op: a new layout), Reshape/Flatten/Squeeze/Unsqueeze (RESHAPE in the current
layout when it allows), the elementwise binary ops Add/Sub/Mul/Div/Pow/Max/Min with broadcasting, MatMul
and Gemm, Softmax, LayerNormalization, ReduceMean/Sum/Max/Min, GlobalAveragePool, Gather, Concat, Split,
Slice, Expand.

TFLite op kinds emitted (the int8 quantizer maps these): RESHAPE, TRANSPOSE (layout changes, counted),
ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, POW (exponents other than -1, 0.5, -0.5, 1, 2, 3, 4), SQRT, RSQRT,
FULLY_CONNECTED (keep_num_dims for rank > 2), BATCH_MATMUL (adj_x/adj_y), SOFTMAX, MEAN, SUM, REDUCE_MAX,
REDUCE_MIN, SLICE, PAD (stepped slices whose last step runs past the end), STRIDED_SLICE (negative steps
only), GATHER (indices in more than ``MAX_GATHER_RUNS`` runs only), CONCATENATION, SPLIT, BROADCAST_TO.
XNNPACK (LiteRT 2.3) runs all of them except POW, STRIDED_SLICE, GATHER and BROADCAST_TO, which is why
steps, Gathers and those Pows take the other forms.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgekit.export.tflite.ir import Origin
from edgekit.export.tflite.layout_demand import wanted_orders
from edgekit.export.tflite.lowering_utils import attrs as _attrs
from edgekit.export.tflite.lowering_utils import clean as _clean
from edgekit.export.tflite.lowering_utils import (
    default_perm,
    drop_axes,
    identity,
    moves_only_unit_axes,
    permuted,
    reshaped_perm,
)

_BINARY = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Max": "MAXIMUM", "Min": "MINIMUM",
           "Pow": "POW"}
#: A Gather of constant indices becomes SLICEs joined by a CONCATENATION up to this many contiguous runs.
MAX_GATHER_RUNS = 8
_REDUCE = {"ReduceMean": "MEAN", "ReduceSum": "SUM", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN"}


class TensorOps:
    # --- small builders -----------------------------------------------------------------------------

    def tmp(self, base: str, shape, dtype: str = "float32") -> str:
        return self.g.add_tensor(base, shape, dtype)

    def _cost(self, onnx_name: str, perm) -> int:
        """Elements a TRANSPOSE would move to bring ``onnx_name`` to layout ``perm`` (0 when free)."""
        shape = self.onnx_shape(onnx_name)
        if len(shape) != len(perm) or self.has_view(onnx_name, perm) or moves_only_unit_axes(
                shape, self.perm_of(onnx_name), perm):
            return 0
        return int(np.prod(shape))

    def common_perm(self, names: list[str], rank: int) -> tuple[int, ...]:
        """The layout for an elementwise op of output rank ``rank`` over ``names``: the layout of one of its
        full-rank activations, the one that moves the fewest elements (the default layout on ties)."""
        acts = [n for n in names if n and n not in self.consts and len(self.onnx_shape(n)) == rank]
        if not acts:
            return identity(rank)
        candidates = list(dict.fromkeys(self.perm_of(n) for n in acts))
        return min(candidates, key=lambda p: (sum(self._cost(n, p) for n in acts), p != default_perm(rank)))

    # --- layout-only ops ----------------------------------------------------------------------------

    def op_Transpose(self, node) -> None:
        x = node.input[0]
        rank = len(self.onnx_shape(x))
        tp = [int(v) for v in _attrs(node).get("perm", list(reversed(range(rank))))]
        self.bind(node.output[0], self.use(x), tuple(tp.index(a) for a in self.perm_of(x)))

    def op_Reshape(self, node) -> None:
        self.reshape(node.input[0], node.output[0], node)

    op_Flatten = op_Squeeze = op_Unsqueeze = op_Reshape

    def reshape(self, src: str, out: str, node) -> None:
        """``out = reshape(src)`` as a RESHAPE in ``src``'s layout when its merged and split axes allow,
        else after one TRANSPOSE to the layout that gives ``out`` its default layout (or the ONNX one)."""
        in_shape, out_shape = self.onnx_shape(src), self.onnx_shape(out)
        perm = self.perm_of(src)
        out_perm = reshaped_perm(in_shape, out_shape, perm)
        if out_perm is None:
            held = [p for (name, p) in self.views if name == src and len(p) == len(in_shape) and isinstance(p[0], int)]
            wanted = reshaped_perm(out_shape, in_shape, default_perm(len(out_shape)))
            for p in [*held, *([wanted] if wanted else []), identity(len(in_shape))]:
                out_perm = reshaped_perm(in_shape, out_shape, p)
                if out_perm is not None:
                    perm = p
                    break
        x = self.view(src, perm)
        target = permuted(out_shape, out_perm)
        if target == self.g.shape(x):
            self.bind(out, x, out_perm)
            return
        if len(in_shape) == 4 and len(out_shape) == 2:  # a classifier's flatten, named as it always was
            y = self.g.add_tensor(x + "_flat", target, self.g.tensors[x].dtype)
            self.bind(out, y, out_perm)
            shape = self.g.int32_constant("flat_shape", target)
        else:
            y = self.define(out, dtype=self.g.tensors[x].dtype, perm=out_perm)
            shape = self.g.int32_constant("shape", target)
        self.emit("RESHAPE", [x, shape], [y], node, new_shape=target)
        if x in self.nonnegative:
            self.nonnegative.add(y)

    # --- elementwise binary ops ---------------------------------------------------------------------

    def op_Add(self, node) -> None:
        if not self._fold_bias(node):
            self.binary(node, "ADD")

    def op_Sub(self, node) -> None:
        self.binary(node, "SUB")

    def op_Mul(self, node) -> None:
        self.binary(node, "MUL")

    def op_Div(self, node) -> None:
        divisor = self.consts.get(node.input[1])
        if divisor is not None and divisor.dtype.kind == "f":  # x / c = x * (1 / c), to within an ulp
            reciprocal = (1.0 / divisor.astype(np.float64)).astype(np.float32)
            self.binary(node, "MUL", second=reciprocal)
        else:
            self.binary(node, "DIV")

    def op_Max(self, node) -> None:
        self._variadic(node, "MAXIMUM")

    def op_Min(self, node) -> None:
        self._variadic(node, "MINIMUM")

    def op_Sum(self, node) -> None:
        self._variadic(node, "ADD")

    def _variadic(self, node, kind: str) -> None:
        if len(node.input) == 1:
            self.alias(node.output[0], node.input[0])
        elif len(node.input) == 2:
            self.binary(node, kind)
        else:
            raise self.unsupported(node, f"{node.op_type} of {len(node.input)} inputs")

    def op_Pow(self, node) -> None:
        exponent = self.consts.get(node.input[1])
        if exponent is None or exponent.size != 1:
            self.binary(node, "POW")
            return
        e = float(exponent.reshape(()))
        x, out = node.input[0], node.output[0]
        if e == 1.0:
            self.alias(out, x)
        elif e == 2.0:
            xi = self.use(x)
            self.emit("MUL", [xi, xi], [self.define(out, perm=self.perm_of(x))], node)
        elif e in (0.5, -0.5):
            self.emit("SQRT" if e == 0.5 else "RSQRT", [self.use(x)], [self.define(out, perm=self.perm_of(x))], node)
        elif e in (3.0, 4.0):  # XNNPACK runs MUL, not POW
            xi = self.use(x)
            square = self.tmp(xi + "_square", self.g.shape(xi))
            self.emit("MUL", [xi, xi], [square], node)
            self.emit("MUL", [square, xi if e == 3.0 else square], [self.define(out, perm=self.perm_of(x))], node)
        elif e == -1.0:
            one = self.g.add_constant(_clean(out) + "_one", np.array(1.0, np.float32))
            self.emit("DIV", [one, self.use(x)], [self.define(out, perm=self.perm_of(x))], node)
        else:
            self.binary(node, "POW")

    def binary(self, node, kind: str, second: np.ndarray | None = None) -> None:
        """``kind`` of the two inputs (``second`` replaces the second by a constant), broadcast as in ONNX,
        in the layout ``common_perm`` picks; the output has that layout."""
        a, b = node.input[0], node.input[1]
        out = node.output[0]
        rank = len(self.onnx_shape(out))
        perm = self.common_perm([a, b], rank)
        xa = self.broadcastable(a, rank, perm)
        if second is not None:
            value = second.reshape((1,) * (rank - second.ndim) + second.shape)
            xb = self.g.add_constant(_clean(b), value.reshape(()) if value.size == 1 else value.transpose(perm))
        else:
            xb = self.broadcastable(b, rank, perm)
        dtype = self.g.tensors[xa].dtype if a not in self.consts else self.g.tensors[xb].dtype
        self.emit(kind, [xa, xb], [self.define(out, dtype=dtype, perm=perm)], node)

    def _fold_bias(self, node) -> bool:
        """Add of a constant vector over the last axis to the sole reader of a FULLY_CONNECTED without bias
        (PyTorch's Linear on 3-D/4-D input exports MatMul + Add): the vector becomes the FC's bias."""
        x, c = node.input
        if x in self.consts:
            x, c = c, x
        value = self.consts.get(c)
        if value is None or x in self.consts or x not in self.names or self.onnx_users.get(x) != 1 or (
                x in self.onnx_outputs):
            return False
        rank = len(self.onnx_shape(x))
        op = self.g.producers().get(self.names[x])
        if op is None or op.kind != "FULLY_CONNECTED" or op.options.get("activation", "NONE") != "NONE":
            return False
        bias = self.g.tensors[op.inputs[2]]
        if bias.data is None or np.any(bias.data) or self.perm_of(x)[-1] != rank - 1:
            return False
        if value.ndim > rank or value.size != bias.data.size or value.shape[-1] != bias.data.size:
            return False
        bias.data = value.reshape(-1).astype(np.float32)
        self.bind(node.output[0], self.names[x], self.perm_of(x))
        return True

    # --- matrix products ----------------------------------------------------------------------------

    def op_MatMul(self, node) -> None:
        a, b, out = node.input[0], node.input[1], node.output[0]
        ra, rb = len(self.onnx_shape(a)), len(self.onnx_shape(b))
        if ra < 2 or rb < 2:
            raise self.unsupported(node, "1-D MatMul operand")
        weight = self.consts.get(b)
        if weight is not None and rb == 2 and a not in self.consts:
            self.fully_connected(node, a, weight.T, None, out)
        else:
            self.batch_matmul(node, a, b, out)

    def fully_connected(self, node, x: str, weight: np.ndarray, bias: np.ndarray | None, out: str) -> str:
        """FULLY_CONNECTED over ``x``'s last ONNX axis (``weight`` is (out, in)); other axes kept."""
        rank = len(self.onnx_shape(x))
        perm = self.perm_of(x)
        if perm[-1] != rank - 1:
            held = [p for (name, p) in self.views if name == x and len(p) == rank and p[-1] == rank - 1
                    and isinstance(p[0], int)]
            perm = held[0] if held else tuple(p for p in perm if p != rank - 1) + (rank - 1,)
        xi = self.view(x, perm)
        name = _clean(out)
        w = self.g.add_constant(name + "_weights", np.ascontiguousarray(weight, dtype=np.float32))
        b = self.g.add_constant(name + "_bias", (np.zeros(weight.shape[0]) if bias is None else bias).astype(
            np.float32))
        y = self.define(out, perm=perm)
        self.emit("FULLY_CONNECTED", [xi, w, b], [y], node, keep_num_dims=rank != 2)
        return y

    def _matrix(self, name: str, rank: int) -> tuple[str, bool]:
        """``name`` laid out for BATCH_MATMUL at ``rank``: batch axes first in order, the two matrix axes last
        (swapped when that layout is at hand: the op's adj flag). Lower ranks get leading 1s."""
        own = len(self.onnx_shape(name))
        batch = tuple(range(own - 2))
        plain, swapped = batch + (own - 2, own - 1), batch + (own - 1, own - 2)
        adj = not self.has_view(name, plain) and self.has_view(name, swapped) and name not in self.consts
        x = self.view(name, swapped if adj else plain)
        if own < rank:
            shape = (1,) * (rank - own) + self.g.shape(x)
            y = self.tmp(x + "_rank", shape, self.g.tensors[x].dtype)
            self.emit("RESHAPE", [x, self.g.int32_constant("shape", shape)], [y], self.node, new_shape=shape)
            x = y
        return x, adj

    def batch_matmul(self, node, a: str, b: str, out: str) -> str:
        rank = len(self.onnx_shape(out))
        xa, adj_x = self._matrix(a, rank)
        xb, adj_y = self._matrix(b, rank)
        y = self.define(out, perm=identity(rank))
        self.emit("BATCH_MATMUL", [xa, xb], [y], node, adj_x=adj_x, adj_y=adj_y)
        return y

    def op_Gemm(self, node) -> None:
        a = _attrs(node)
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        trans_a, trans_b = int(a.get("transA", 0)), int(a.get("transB", 0))
        x, w_name, out = node.input[0], node.input[1], node.output[0]
        c_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        weight = self.consts.get(w_name)
        c = self.consts.get(c_name) if c_name else None
        n = self.onnx_shape(out)[1]
        if weight is not None and x not in self.consts and (c_name is None or (c is not None and c.size in (1, n))):
            weight = (weight if trans_b else weight.T).astype(np.float64) * alpha  # (N, K)
            bias = None if c is None else np.broadcast_to(c.astype(np.float64).reshape(-1) * beta, (n,))
            if trans_a:  # the FC reads x's last axis: lay x out transposed
                self.bind(x + "#T", self.view(x, (1, 0)), (0, 1))
                self.shapes[x + "#T"] = self.onnx_shape(x)[::-1]
                x = x + "#T"
            self.fully_connected(node, x, weight, bias, out)
            return
        if trans_a:
            self.bind(x + "#T", self.view(x, (1, 0)), (0, 1))
            self.shapes[x + "#T"] = self.onnx_shape(x)[::-1]
            x = x + "#T"
        if trans_b:
            self.bind(w_name + "#T", self.view(w_name, (1, 0)), (0, 1))
            self.shapes[w_name + "#T"] = self.onnx_shape(w_name)[::-1]
            w_name = w_name + "#T"
        product = out if alpha == 1.0 and c_name is None else out + "#product"
        self.shapes[product] = self.onnx_shape(out)
        self.batch_matmul(node, x, w_name, product)
        if alpha != 1.0:
            scaled = out if c_name is None else out + "#scaled"
            self.shapes[scaled] = self.onnx_shape(out)
            alpha_c = self.g.add_constant("gemm_alpha", np.array(alpha, np.float32))
            self.emit("MUL", [self.use(product), alpha_c], [self.define(scaled, perm=(0, 1))], node)
            product = scaled
        if c_name is not None:
            cc = self.broadcastable(c_name, 2, (0, 1))
            if beta != 1.0:
                scaled_c = self.tmp(cc + "_beta", self.g.shape(cc))
                self.emit("MUL", [cc, self.g.add_constant("gemm_beta", np.array(beta, np.float32))], [scaled_c],
                          node)
                cc = scaled_c
            self.emit("ADD", [self.use(product), cc], [self.define(out, perm=(0, 1))], node)

    # --- normalisations -----------------------------------------------------------------------------

    def op_Softmax(self, node) -> None:
        x, out = node.input[0], node.output[0]
        rank = len(self.onnx_shape(x))
        default_axis = -1 if self._opset() >= 13 else 1
        axis = int(_attrs(node).get("axis", default_axis)) % rank
        if self._opset() < 13 and axis != rank - 1:
            raise self.unsupported(node, "Softmax before opset 13 over several axes")
        perm = self.perm_of(x)
        if perm[-1] != axis:
            held = [p for (name, p) in self.views if name == x and len(p) == rank and p[-1] == axis
                    and isinstance(p[0], int)]
            perm = held[0] if held else tuple(p for p in perm if p != axis) + (axis,)
        xi = self.view(x, perm)
        self.emit("SOFTMAX", [xi], [self.define(out, perm=perm)], node, beta=1.0)

    def _opset(self) -> int:
        return next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 17)

    def op_LayerNormalization(self, node) -> None:
        """(x - mean) * rsqrt(var + eps) * scale + bias over the axes from ``axis`` on, as MEAN, SUB, MUL,
        MEAN, ADD, RSQRT, MUL, MUL, ADD in the input's layout (over channels of an NHWC tensor too)."""
        a = _attrs(node)
        x, out = node.input[0], node.output[0]
        if len(node.output) > 1 and any(self.onnx_users.get(o) for o in node.output[1:] if o):
            raise self.unsupported(node, "the mean or inverse deviation output is read")
        rank = len(self.onnx_shape(x))
        axis = int(a.get("axis", -1)) % rank
        eps = float(a.get("epsilon", 1e-5))
        perm = self.perm_of(x)
        xi = self.use(x)
        shape = self.g.shape(xi)
        ir_axes = sorted(perm.index(k) for k in range(axis, rank))
        reduced = tuple(1 if i in ir_axes else d for i, d in enumerate(shape))
        axes = self.g.int32_constant("norm_axes", ir_axes)
        base = _clean(out)
        gamma = node.input[1] if len(node.input) > 1 and node.input[1] in self.consts else ""

        def inner(step: str, shape) -> str:  # a value no ONNX tensor holds, computed from x for calibration
            name = self.tmp(f"{base}_{step}", shape)
            self.origins[name] = Origin(x, derived=("layer_norm", step, axis, eps, gamma))
            return name

        mean = inner("mean", reduced)
        self.emit("MEAN", [xi, axes], [mean], node, keep_dims=True)
        centered = inner("centered", shape)
        self.emit("SUB", [xi, mean], [centered], node)
        square = inner("square", shape)
        self.emit("MUL", [centered, centered], [square], node)
        var = inner("var", reduced)
        self.emit("MEAN", [square, axes], [var], node, keep_dims=True)
        shifted = inner("var_eps", reduced)
        self.emit("ADD", [var, self.g.add_constant(base + "_eps", np.array(eps, np.float32))], [shifted], node)
        rstd = inner("rstd", reduced)
        self.emit("RSQRT", [shifted], [rstd], node)
        scale = node.input[1] if len(node.input) > 1 and node.input[1] else None
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        steps = [("MUL", rstd), *([("MUL", scale)] if scale else []), *([("ADD", bias)] if bias else [])]
        y = centered
        for i, (kind, operand) in enumerate(steps):
            if operand != rstd:
                operand = self.broadcastable(operand, rank, perm)
            last = i == len(steps) - 1
            z = self.define(out, perm=perm) if last else inner("normalized" if operand == rstd else "scaled", shape)
            self.emit(kind, [y, operand], [z], node)
            y = z

    # --- reductions ---------------------------------------------------------------------------------

    def op_GlobalAveragePool(self, node) -> None:
        axes = self.g.int32_constant("mean_axes", [1, 2])
        self.emit("MEAN", [self.use(node.input[0]), axes], [self.define(node.output[0])], node, keep_dims=True)

    def _reduce(self, node) -> None:
        a = _attrs(node)
        x, out = node.input[0], node.output[0]
        rank = len(self.onnx_shape(x))
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            if node.input[1] not in self.consts:
                raise self.unsupported(node, "reduction axes are not constant")
            axes = [int(v) for v in self.consts[node.input[1]].reshape(-1)]
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                self.alias(out, x)
                return
            axes = list(range(rank))
        axes = sorted({int(v) % rank for v in axes})
        keep = bool(a.get("keepdims", 1))
        perm = self.perm_of(x)
        out_perm = perm if keep else drop_axes(perm, set(axes))
        ir_axes = sorted(perm.index(v) for v in axes)
        y = self.define(out, perm=out_perm)
        kind = _REDUCE[node.op_type]
        self.emit(kind, [self.use(x), self.g.int32_constant(f"{kind.lower()}_axes", ir_axes)], [y], node,
                  keep_dims=keep)
        if node.op_type == "ReduceMax" and self.use(x) in self.nonnegative:
            self.nonnegative.add(y)

    op_ReduceMean = op_ReduceSum = op_ReduceMax = op_ReduceMin = _reduce

    # --- selection and joining ----------------------------------------------------------------------

    def lay_out_for_pieces(self, x: str) -> None:
        """Before ``x`` is cut into pieces (a Split, Gathers of one index) that each reach a MatMul wanting
        another layout (attention's q, k and v), lay ``x`` out once as they all want: one TRANSPOSE, not one
        per piece (``layout_demand``)."""
        if x in self.consts or x not in self.names:
            return
        rank = len(self.onnx_shape(x))
        wanted = []
        for node in self.readers.get(x, []):
            if node.op_type == "Split":
                pieces, cut = list(node.output), None
            elif node.op_type == "Gather" and node.input[1] in self.consts and self.consts[node.input[1]].ndim == 0:
                pieces, cut = [node.output[0]], int(_attrs(node).get("axis", 0)) % rank
            else:
                return
            for piece in pieces:
                orders = wanted_orders(piece, self.readers, self.onnx_shape,
                                       lambda n: n in self.consts and self.consts[n].size == 1)
                if orders is None:
                    return
                wanted.append(frozenset(tuple(a + (cut is not None and a >= cut) for a in o) for o in orders))
        if not wanted:
            return
        perm = self.perm_of(x)

        def fits(orders) -> bool:
            return any(tuple(a for a in perm if a in o) == o for o in orders)

        common = frozenset.intersection(*wanted)
        if not common or sum(not fits(w) for w in wanted) < 2:
            return
        order = min(common)
        better = tuple(a for a in range(rank) if a not in order) + order
        self.names[x] = self.view(x, better)
        self.perms[x] = better

    def op_Gather(self, node) -> None:
        x, idx_name, out = node.input[0], node.input[1], node.output[0]
        self.lay_out_for_pieces(x)
        indices = self.consts.get(idx_name)
        if indices is None:
            raise self.unsupported(node, "indices are not constant")
        if indices.ndim > 1:
            raise self.unsupported(node, "indices of rank > 1")
        shape = self.onnx_shape(x)
        rank = len(shape)
        axis = int(_attrs(node).get("axis", 0)) % rank
        dim = shape[axis]
        idx = [int(i) % dim for i in indices.reshape(-1)]
        perm = self.perm_of(x)
        xi = self.use(x)
        ia = perm.index(axis)
        steps = {b - a for a, b in zip(idx, idx[1:], strict=False)}
        if indices.ndim == 0 or (len(steps) <= 1 and min(steps, default=1) > 0):
            step = min(steps, default=1)
            if indices.ndim == 0:
                sliced = self.tmp(xi + "_slice", tuple(1 if i == ia else d for i, d in enumerate(self.g.shape(xi))))
                self._slice(xi, sliced, {ia: (idx[0], idx[0] + 1, 1)}, node)
                out_perm = drop_axes(perm, {axis})
                target = permuted(self.onnx_shape(out), out_perm)
                y = self.define(out, perm=out_perm)
                self.emit("RESHAPE", [sliced, self.g.int32_constant("shape", target)], [y], node, new_shape=target)
            else:
                y = self.define(out, perm=perm)
                self._slice(xi, y, {ia: (idx[0], idx[-1] + 1, step)}, node)
        else:
            y = self.define(out, perm=perm)
            runs: list[list[int]] = []
            for i in idx:
                if runs and i == runs[-1][-1] + 1:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            if len(runs) <= MAX_GATHER_RUNS:  # XNNPACK runs SLICE and CONCATENATION, not GATHER
                shape = list(self.g.shape(xi))
                pieces = []
                for run in runs:
                    piece = self.tmp(y + "_run", shape[:ia] + [len(run)] + shape[ia + 1:], self.g.tensors[xi].dtype)
                    self.slice(xi, piece, [run[0] if i == ia else 0 for i in range(len(shape))],
                               shape[:ia] + [len(run)] + shape[ia + 1:], node)
                    pieces.append(piece)
                self.emit("CONCATENATION", pieces, [y], node, axis=ia)
            else:
                self.emit("GATHER", [xi, self.g.int32_constant("gather_indices", idx)], [y], node, axis=ia)
        if xi in self.nonnegative:
            self.nonnegative.add(y)

    def _slice(self, x: str, out: str, ranges: dict[int, tuple[int, int, int]], node) -> None:
        """SLICE (unit steps) or STRIDED_SLICE of IR tensor ``x``: ``ranges`` maps IR axes to clamped
        (begin, end, step); an end of -1 with a negative step means "through index 0"."""
        shape = self.g.shape(x)
        begin, end, strides = [0] * len(shape), list(shape), [1] * len(shape)
        end_mask = 0
        for axis, (b, e, s) in ranges.items():
            begin[axis], end[axis], strides[axis] = b, e, s
            if s < 0 and e < 0:
                end_mask |= 1 << axis
        if all(s == 1 for s in strides):
            self.slice(x, out, begin, [e - b for b, e in zip(begin, end, strict=True)], node)
            return
        if self._strided_by_reshape(x, out, begin, end, strides, node):
            return
        self.emit("STRIDED_SLICE", [x, self.g.int32_constant("slice_begin", begin),
                                    self.g.int32_constant("slice_end", end),
                                    self.g.int32_constant("slice_strides", strides)], [out], node,
                  end_mask=end_mask)

    def _strided_by_reshape(self, x: str, out: str, begin, end, strides, node) -> bool:
        """Positive steps without STRIDED_SLICE (XNNPACK does not run it with steps > 1): SLICE a whole number
        of steps (PAD its end where the tensor ends first), RESHAPE each stepped axis of n * s elements into
        (n, s), SLICE one column of each, RESHAPE to the result. False for negative steps (then the caller
        emits STRIDED_SLICE)."""
        shape = self.g.shape(x)
        first, sizes, split, column, pads = [], [], [], [], []
        for d, b, e, s in zip(shape, begin, end, strides, strict=True):
            if s == 1:
                first.append(b)
                sizes.append(e - b)
                split.append((e - b,))
                column.append(None)
                pads.append(0)
                continue
            n = -(-(e - b) // s) if s > 1 else 0
            if n <= 0:
                return False
            k = max(0, b + n * s - d)  # start the window k elements early when n * s would run past the end
            if k > min(b, s - 1):  # or pad its end (the padding is never picked)
                k = 0
            first.append(b - k)
            sizes.append(min(n * s, d - b + k))
            pads.append(n * s - sizes[-1])
            split.append((n, s))
            column.append(k)
        dtype = self.g.tensors[x].dtype
        window = self.tmp(out + "_window", sizes, dtype)
        self.slice(x, window, first, sizes, node)
        if any(pads):
            padded = self.tmp(out + "_window_padded", [d + p for d, p in zip(sizes, pads, strict=True)], dtype)
            self.emit("PAD", [window, self.g.int32_constant("paddings", [[0, p] for p in pads])], [padded], node)
            window = padded
        cut_shape = [d for parts in split for d in parts]
        cut = self.tmp(out + "_steps", cut_shape, self.g.tensors[x].dtype)
        self.emit("RESHAPE", [window, self.g.int32_constant("shape", cut_shape)], [cut], node, new_shape=cut_shape)
        pick_begin, pick_size = [], []
        for parts, k in zip(split, column, strict=True):
            pick_begin += [0] if k is None else [0, k]
            pick_size += list(parts) if k is None else [parts[0], 1]
        picked = self.tmp(out + "_picked", pick_size, self.g.tensors[x].dtype)
        self.slice(cut, picked, pick_begin, pick_size, node)
        target = self.g.shape(out)
        self.emit("RESHAPE", [picked, self.g.int32_constant("shape", target)], [out], node, new_shape=target)
        return True

    def slice(self, x: str, out: str, begin, sizes, node) -> None:
        self.emit("SLICE", [x, self.g.int32_constant("slice_begin", list(begin)),
                            self.g.int32_constant("slice_size", list(sizes))], [out], node)

    def op_Slice(self, node) -> None:
        x, out = node.input[0], node.output[0]
        for i in node.input[1:]:
            if i and i not in self.consts:
                raise self.unsupported(node, "slice bounds are not constant")

        def ints(k: int, default):
            return [int(v) for v in self.consts[node.input[k]].reshape(-1)] if len(node.input) > k and node.input[
                k] else default

        starts, ends = ints(1, None), ints(2, None)
        axes = ints(3, list(range(len(starts))))
        steps = ints(4, [1] * len(starts))
        shape = self.onnx_shape(x)
        perm = self.perm_of(x)
        ranges = {}
        for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
            ax %= len(shape)
            dim = shape[ax]
            s = s + dim if s < 0 else s
            e = e + dim if e < 0 else e
            if st > 0:
                s, e = min(max(s, 0), dim), min(max(e, 0), dim)
            else:
                s, e = min(max(s, 0), dim - 1), min(max(e, -1), dim - 1)
            ranges[perm.index(ax)] = (s, e, st)
        xi = self.use(x)
        y = self.define(out, perm=perm)
        self._slice(xi, y, ranges, node)
        if xi in self.nonnegative:
            self.nonnegative.add(y)

    def op_Concat(self, node) -> None:
        out = node.output[0]
        rank = len(self.onnx_shape(out))
        inputs = [i for i in node.input if i and 0 not in self.onnx_shape(i)]
        perm = self.common_perm(inputs, rank)
        axis = perm.index(int(_attrs(node).get("axis", 0)) % rank)
        xs = [self.view(i, perm) for i in inputs]
        y = self.define(out, perm=perm)
        self.emit("CONCATENATION", xs, [y], node, axis=axis)
        if all(i in self.nonnegative for i in xs):
            self.nonnegative.add(y)

    def op_Split(self, node) -> None:
        self.lay_out_for_pieces(node.input[0])
        a = _attrs(node)
        shape = self.onnx_shape(node.input[0])
        onnx_axis = int(a.get("axis", 0)) % len(shape)
        if len(node.input) > 1 and node.input[1]:
            sizes = [int(v) for v in self.consts[node.input[1]]]
        elif "split" in a:
            sizes = [int(v) for v in a["split"]]
        else:
            sizes = [shape[onnx_axis] // len(node.output)] * len(node.output)
        perm = self.perm_of(node.input[0])
        axis = perm.index(onnx_axis)
        x = self.use(node.input[0])
        outs = [self.define(o, perm=perm) for o in node.output]
        if len(set(sizes)) == 1:
            self.emit("SPLIT", [self.g.int32_constant("split_axis", np.array(axis)), x], outs, node,
                      num_splits=len(outs))
        else:  # SPLIT_V is not delegated to XNNPACK; SLICE is
            start = 0
            ir_shape = self.g.shape(x)
            for out, size in zip(outs, sizes, strict=True):
                begin = [start if i == axis else 0 for i in range(len(ir_shape))]
                self.slice(x, out, begin, [size if i == axis else d for i, d in enumerate(ir_shape)], node)
                start += size
        for out in outs:
            if x in self.nonnegative:
                self.nonnegative.add(out)

    def op_Expand(self, node) -> None:
        x, out = node.input[0], node.output[0]
        out_shape = self.onnx_shape(out)
        rank = len(out_shape)
        if tuple(self.onnx_shape(x)) == tuple(out_shape):
            self.alias(out, x)
            return
        perm = self.common_perm([x], rank) if len(self.onnx_shape(x)) == rank else default_perm(rank)
        xi = self.broadcastable(x, rank, perm)
        target = permuted(out_shape, perm)
        self.emit("BROADCAST_TO", [xi, self.g.int32_constant("shape", target)], [self.define(out, perm=perm)], node)

    def op_Cast(self, node) -> None:
        to = int(_attrs(node)["to"])
        if to != onnx.TensorProto.FLOAT or self.g.tensors[self.use(node.input[0])].dtype != "float32":
            raise self.unsupported(node, "Cast other than float to float")
        self.alias(node.output[0], node.input[0])
