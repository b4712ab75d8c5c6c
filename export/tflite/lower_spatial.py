"""Lowering of spatial ONNX ops (convolutions, padding, pooling, resizing) to NHWC TFLite ops.

A mixin of ``from_onnx._Lowering``: handlers ``op_<OnnxType>`` use its ``use``/``define``/``emit`` helpers.
Every 4-D activation a handler reads is NHWC in the IR.

TFLite op kinds emitted here: CONV_2D (grouped and dilated), DEPTHWISE_CONV_2D (dilated), TRANSPOSE_CONV,
PAD, ADD (constant padding with a nonzero value), MIRROR_PAD, SLICE, CONCATENATION, MAX_POOL_2D,
AVERAGE_POOL_2D, MUL (average-pool divisors), DEPTH_TO_SPACE, RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR; no PADV2.
LiteRT 2.3's XNNPACK delegate leaves PADV2, MIRROR_PAD, RESIZE_NEAREST_NEIGHBOR and a CONCATENATION of more than
5 inputs to the builtin kernels, so they are avoided where a delegated form is exact: a nonzero pad value is
PAD + ADD of a border constant, edge padding is SLICE + CONCATENATION, a max pool over signed values pads by
repeating the border (a window that reaches the padding always holds the border value), reflect padding of up to
``_MAX_SLICED_REFLECT`` rows per side is slices too, and nearest upsampling by an integer factor of up to 5 is
CONCATENATION + DEPTH_TO_SPACE.
"""

from __future__ import annotations

import math

import numpy as np

from edgekit.export.tflite.lowering_utils import attrs as _attrs
from edgekit.export.tflite.lowering_utils import clean as _clean

_MAX_SLICED_REFLECT = 4  # reflect padding wider than this per side becomes one (undelegated) MIRROR_PAD
_MAX_CONCAT_INPUTS = 5  # LiteRT 2.3's XNNPACK delegate leaves a CONCATENATION of more inputs to the builtin kernel


class SpatialOps:
    # --- convolutions -------------------------------------------------------------------------------

    def op_Conv(self, node) -> None:
        a = _attrs(node)
        weight = self.consts.get(node.input[1])
        if weight is None or weight.ndim != 4:
            raise self.unsupported(node, "weights are not a constant 4-D tensor")
        if len(self.onnx_shape(node.input[0])) != 4:
            raise self.unsupported(node, "only 2-D convolutions")
        out_c, in_per_group, kh, kw = weight.shape
        group = int(a.get("group", 1))
        dilation = tuple(int(d) for d in a.get("dilations", [1, 1]))
        bias = self.consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(out_c, np.float32)
        if bias is None:
            raise self.unsupported(node, "bias is not constant")
        x = self.use(node.input[0])
        in_shape = self.onnx_shape(node.input[0])
        strides = tuple(int(s) for s in a.get("strides", [1, 1]))
        effective = tuple((k - 1) * d + 1 for k, d in zip((kh, kw), dilation, strict=True))
        x, padding = self.padding(node, x, in_shape, effective, strides, self._pads(node, a, in_shape), pad_value=0.0)
        name = _clean(node.output[0])
        b = self.g.add_constant(name + "_bias", bias.astype(np.float32))
        out = self.define(node.output[0])
        options = {"stride": strides, "padding": padding}
        if dilation != (1, 1):
            options["dilation"] = dilation
        if group == 1:
            w = self.g.add_constant(name + "_filter", weight.transpose(0, 2, 3, 1).astype(np.float32))
            self.emit("CONV_2D", [x, w, b], [out], node, **options)
        elif group == in_shape[1] and in_per_group == 1:
            w = self.g.add_constant(name + "_filter", weight.transpose(1, 2, 3, 0).astype(np.float32))
            self.emit("DEPTHWISE_CONV_2D", [x, w, b], [out], node, depth_multiplier=out_c // group, **options)
        else:  # grouped: TFLite (and XNNPACK) infer the groups from the filter's input depth
            w = self.g.add_constant(name + "_filter", weight.transpose(0, 2, 3, 1).astype(np.float32))
            self.emit("CONV_2D", [x, w, b], [out], node, **options)

    def op_ConvTranspose(self, node) -> None:
        """TRANSPOSE_CONV computes the full (in - 1) * stride + kernel output and keeps ``output_shape`` rows
        from row 0 (VALID) or from half its surplus (SAME); a PyTorch crop that is neither is a SLICE of the full
        output, and an ``output_padding`` past the full output pads the input with zero rows first."""
        a = _attrs(node)
        weight = self.consts.get(node.input[1])
        if weight is None or weight.ndim != 4:
            raise self.unsupported(node, "weights are not a constant 4-D tensor")
        if int(a.get("group", 1)) != 1:
            raise self.unsupported(node, "grouped transposed convolution")
        if any(int(d) != 1 for d in a.get("dilations", [1, 1])):
            raise self.unsupported(node, "dilated transposed convolution")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or "output_shape" in a:
            raise self.unsupported(node, "auto_pad or output_shape; export with explicit pads")
        in_c, out_c, kh, kw = weight.shape
        n = self.onnx_shape(node.input[0])[0]
        _, _, oh, ow = self.onnx_shape(node.output[0])
        strides = tuple(int(s) for s in a.get("strides", [1, 1]))
        top, left = (int(p) for p in a.get("pads", [0, 0, 0, 0])[:2])
        bias = self.consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(out_c, np.float32)
        name = _clean(node.output[0])
        w = self.g.add_constant(name + "_filter", weight.transpose(1, 2, 3, 0).astype(np.float32))
        b = self.g.add_constant(name + "_bias", bias.astype(np.float32))
        x = self.use(node.input[0])

        ins = self.onnx_shape(node.input[0])[2:]
        geometry = list(zip((top, left), (oh, ow), ins, (kh, kw), strides, strict=True))

        def same_top(size, k, s):  # TFLite's SAME for TRANSPOSE_CONV: a forward conv's padding of output_shape
            return max((-(-size // s) - 1) * s + k - size, 0) // 2

        # TFLite checks that output_shape maps back onto the input: VALID (o - k) // s + 1, SAME ceil(o / s)
        if all(t == 0 and (o - k) // s + 1 == i for t, o, i, k, s in geometry):
            padding = "VALID"
        elif all(same_top(o, k, s) == t and -(-o // s) == i for t, o, i, k, s in geometry):
            padding = "SAME"
        else:
            padding = None
        if padding is not None:
            out = self.define(node.output[0])
            shape = self.g.int32_constant(name + "_output_shape", [n, oh, ow, out_c])
            self.emit("TRANSPOSE_CONV", [shape, w, x, b], [out], node, stride=strides, padding=padding)
            return
        # Otherwise: the full output, from an input with zero rows added where PyTorch's output_padding reaches
        # past it (they add nothing but the bias), then a SLICE.
        extra = [max(0, -(-(t + o - ((i - 1) * s + k)) // s)) for t, o, i, k, s in geometry]
        if any(extra):
            x = self.pad(node, x, (0, 0, extra[0], extra[1]), 0.0)
        full_h, full_w = ((i + e - 1) * s + k for (t, o, i, k, s), e in zip(geometry, extra, strict=True))
        full = self.g.add_tensor(name + "_uncropped", (n, full_h, full_w, out_c))
        shape = self.g.int32_constant(name + "_output_shape", [n, full_h, full_w, out_c])
        self.emit("TRANSPOSE_CONV", [shape, w, x, b], [full], node, stride=strides, padding="VALID")
        out = self.define(node.output[0])
        self.emit("SLICE", [full, self.g.int32_constant(name + "_begin", [0, top, left, 0]),
                            self.g.int32_constant(name + "_size", [n, oh, ow, out_c])], [out], node)

    # --- padding ------------------------------------------------------------------------------------

    def _pads(self, node, a: dict, in_shape) -> list[int]:
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("NOTSET", "VALID"):
            return [int(p) for p in a.get("pads", [0, 0, 0, 0])]
        raise self.unsupported(node, f"auto_pad={auto}; export with explicit padding")

    def padding(self, node, x: str, in_shape, kernel, strides, pads, pad_value: float) -> tuple[str, str]:
        """Return the (possibly padded) input and the TFLite padding mode matching ONNX ``pads``.

        ``kernel`` is the effective (dilated) window. ``pad_value`` fills explicit padding; ``None`` repeats
        the border instead, which is exact for a max pool whatever the sign of its input."""
        top, left, bottom, right = (int(p) for p in pads)
        if top == left == bottom == right == 0:
            return x, "VALID"
        if _is_same(in_shape, kernel, strides, pads):
            return x, "SAME"
        return self.pad(node, x, (top, left, bottom, right), pad_value), "VALID"

    def pad(self, node, x: str, pads, pad_value: float | None) -> str:
        """``x`` (NHWC) padded by ``pads`` = (top, left, bottom, right) with zeros (``pad_value`` 0) or, for
        ``None``, by repeating its border rows and columns."""
        top, left, bottom, right = pads
        if pad_value is None:
            x = self._repeat_edges(node, x, 1, top, bottom)
            return self._repeat_edges(node, x, 2, left, right)
        if pad_value != 0.0:
            raise ValueError("pad() fills with zeros or repeats the border")
        n, h, w, c = self.g.shape(x)
        paddings = self.g.int32_constant(_clean(node.name or node.output[0]) + "_paddings",
                                         [[0, 0], [top, bottom], [left, right], [0, 0]])
        padded = self.g.add_tensor(x + "_padded", (n, h + top + bottom, w + left + right, c))
        self.emit("PAD", [x, paddings], [padded], node)
        if x in self.nonnegative:
            self.nonnegative.add(padded)
        return padded

    def _border(self, node, ir_pads, padded_shape, value: float) -> str:
        """A constant broadcasting against ``padded_shape``: ``value`` where any axis is in its padding, else 0."""
        shape = [size if any(p) else 1 for size, p in zip(padded_shape, ir_pads, strict=True)]
        inside = np.ones(shape, dtype=bool)
        for axis, (before, after) in enumerate(ir_pads):
            if before or after:
                index = np.arange(shape[axis])
                keep = (index >= before) & (index < shape[axis] - after)
                inside &= keep.reshape([-1 if a == axis else 1 for a in range(len(shape))])
        border = np.where(inside, 0.0, value).astype(np.float32)
        return self.g.add_constant(_clean(node.output[0]) + "_border", border)

    def _rows(self, node, x: str, axis: int, start: int) -> str:
        """The single row (axis 1) or column (axis 2) ``start`` of ``x``."""
        shape = list(self.g.shape(x))
        begin = [0] * len(shape)
        begin[axis], shape[axis] = start, 1
        out = self.g.add_tensor(f"{x}_{'row' if axis == 1 else 'col'}{start}", shape)
        self.emit("SLICE", [x, self.g.int32_constant("slice_begin", begin), self.g.int32_constant("slice_size", shape)],
                  [out], node)
        if x in self.nonnegative:
            self.nonnegative.add(out)
        return out

    def _concat(self, node, parts: list[str], axis: int, base: str, out: str | None = None) -> str:
        """CONCATENATION of ``parts``, chained so no op has more inputs than XNNPACK takes."""
        while len(parts) > _MAX_CONCAT_INPUTS:
            parts = [self._concat(node, parts[:_MAX_CONCAT_INPUTS], axis, base), *parts[_MAX_CONCAT_INPUTS:]]
        shape = list(self.g.shape(parts[0]))
        shape[axis] = sum(self.g.shape(p)[axis] for p in parts)
        out = out or self.g.add_tensor(base, shape)
        self.emit("CONCATENATION", parts, [out], node, axis=axis)
        if all(p in self.nonnegative for p in parts):
            self.nonnegative.add(out)
        return out

    def _repeat_edges(self, node, x: str, axis: int, before: int, after: int, out: str | None = None) -> str:
        if before == after == 0:
            return x
        size = self.g.shape(x)[axis]
        first = [self._rows(node, x, axis, 0)] * before if before else []
        last = [self._rows(node, x, axis, size - 1)] * after if after else []
        return self._concat(node, [*first, x, *last], axis, x + "_edge_padded", out)

    def _reflect(self, node, x: str, axis: int, before: int, after: int, out: str | None = None) -> str:
        size = self.g.shape(x)[axis]
        first = [self._rows(node, x, axis, i) for i in range(before, 0, -1)]
        last = [self._rows(node, x, axis, size - 2 - i) for i in range(after)]
        return self._concat(node, [*first, x, *last], axis, x + "_reflect_padded", out)

    def op_Pad(self, node) -> None:
        a = _attrs(node)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        shape = self.onnx_shape(node.input[0])
        rank = len(shape)
        pads = self.consts.get(node.input[1]) if len(node.input) > 1 else np.array(a.get("pads", []))
        if pads is None:
            raise self.unsupported(node, "pads are not constant")
        pads = [int(p) for p in np.asarray(pads).ravel()]
        axes = list(range(rank))
        if len(node.input) > 3 and node.input[3]:
            axes = [int(v) % rank for v in self.consts[node.input[3]]]
        if any(p < 0 for p in pads):
            raise self.unsupported(node, "negative pads (cropping)")
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in self.consts:
                raise self.unsupported(node, "pad value is not constant")
            value = float(np.asarray(self.consts[node.input[2]]).ravel()[0])
        # per IR axis: (before, after)
        ir_pads = [[0, 0] for _ in range(rank)]
        for i, onnx_axis in enumerate(axes):
            ir_pads[self.ir_axis(node.input[0], onnx_axis)] = [pads[i], pads[i + len(axes)]]
        x = self.use(node.input[0])
        if mode == "constant":
            out = self.define(node.output[0])
            paddings = self.g.int32_constant(_clean(node.output[0]) + "_paddings", ir_pads)
            if value == 0.0:
                self.emit("PAD", [x, paddings], [out], node)
            else:  # zeros, plus a constant that is ``value`` on the border and 0 inside (PADV2 is not delegated)
                zero_padded = self.g.add_tensor(x + "_padded", self.g.shape(out))
                self.emit("PAD", [x, paddings], [zero_padded], node)
                self.emit("ADD", [zero_padded, self._border(node, ir_pads, self.g.shape(out), value)], [out], node)
            if x in self.nonnegative and value >= 0:
                self.nonnegative.add(out)
            return
        if mode not in ("reflect", "edge"):
            raise self.unsupported(node, f"mode={mode}; constant, reflect and edge padding are supported")
        if mode == "reflect" and any(p >= shape[axis] for axis, p in zip([*axes, *axes], pads, strict=True)):
            raise self.unsupported(node, "reflect padding as wide as the padded axis")
        if mode == "reflect" and any(max(p) > _MAX_SLICED_REFLECT for p in ir_pads):
            out = self.define(node.output[0])
            paddings = self.g.int32_constant(_clean(node.output[0]) + "_paddings", ir_pads)
            self.emit("MIRROR_PAD", [x, paddings], [out], node, mode="REFLECT")
            if x in self.nonnegative:
                self.nonnegative.add(out)
            return
        step = self._reflect if mode == "reflect" else self._repeat_edges
        padded_axes = [axis for axis, p in enumerate(ir_pads) if any(p)]
        if not padded_axes:
            self.op_Identity(node)
            return
        for axis in padded_axes:
            out = self.define(node.output[0]) if axis == padded_axes[-1] else None
            x = step(node, x, axis, *ir_pads[axis], out=out)

    # --- pooling ------------------------------------------------------------------------------------

    def _pool_geometry(self, node, a: dict):
        in_shape = self.onnx_shape(node.input[0])
        out_shape = self.onnx_shape(node.output[0])
        kernel = tuple(int(k) for k in a["kernel_shape"])
        strides = tuple(int(s) for s in a.get("strides", [1] * len(kernel)))
        if len(kernel) != 2 or len(in_shape) != 4:
            raise self.unsupported(node, "only 2-D pooling")
        if any(int(d) != 1 for d in a.get("dilations", [1, 1])):
            raise self.unsupported(node, "dilated pooling")
        pads = self._pads(node, a, in_shape)
        # ceil_mode windows may run past the bottom/right padding: pad that far too
        extra = [max(0, (o - 1) * s + k - (i + pb + pe))
                 for o, s, k, i, pb, pe in zip(out_shape[2:], strides, kernel, in_shape[2:], pads[:2], pads[2:],
                                               strict=True)]
        return in_shape, out_shape, kernel, strides, pads, extra

    def op_MaxPool(self, node) -> None:
        a = _attrs(node)
        if len(node.output) > 1 and node.output[1]:
            raise self.unsupported(node, "max pool indices")
        in_shape, _, kernel, strides, pads, extra = self._pool_geometry(node, a)
        pads = [pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1]]
        x = self.use(node.input[0])
        # Zero padding is exact when the input is >= 0 (after a ReLU); otherwise repeat the border, which
        # every window that reaches the padding also holds (PADV2 with -inf is not delegated to XNNPACK).
        fill = 0.0 if x in self.nonnegative else None
        x, padding = self.padding(node, x, in_shape, kernel, strides, pads, pad_value=fill)
        out = self.define(node.output[0])
        self.emit("MAX_POOL_2D", [x], [out], node, filter=kernel, stride=strides, padding=padding)
        if x in self.nonnegative:
            self.nonnegative.add(out)

    def op_GlobalMaxPool(self, node) -> None:
        _, _, h, w = self.onnx_shape(node.input[0])
        x = self.use(node.input[0])
        if h == w == 1:
            self.op_Identity(node)
            return
        out = self.define(node.output[0])
        self.emit("MAX_POOL_2D", [x], [out], node, filter=(h, w), stride=(1, 1), padding="VALID")
        if x in self.nonnegative:
            self.nonnegative.add(out)

    def op_AveragePool(self, node) -> None:
        """AVERAGE_POOL_2D divides by the window's in-bounds count. Windows are made to lie inside the input
        (explicit zero PAD, including ceil-mode overhang) and a constant MUL rescales the positions whose
        PyTorch divisor is not the window size: with ``count_include_pad`` the explicit padding counts but
        the ceil-mode overhang does not; without it only input elements count."""
        a = _attrs(node)
        in_shape, out_shape, kernel, strides, pads, extra = self._pool_geometry(node, a)
        include_pad = bool(a.get("count_include_pad", 0))
        x = self.use(node.input[0])
        out_name = node.output[0]
        if not any(extra) and (not any(pads) or (not include_pad and _is_same(in_shape, kernel, strides, pads))):
            out = self.define(out_name)  # SAME's divisor counts only input elements, as count_include_pad=0
            self.emit("AVERAGE_POOL_2D", [x], [out], node, filter=kernel, stride=strides,
                      padding="SAME" if any(pads) else "VALID")
            if x in self.nonnegative:
                self.nonnegative.add(out)
            return
        divisors = []
        for axis in range(2):
            size, k, s, pb, pe, o = in_shape[2 + axis], kernel[axis], strides[axis], pads[axis], pads[2 + axis], \
                out_shape[2 + axis]
            start = np.arange(o) * s - pb
            end = np.minimum(start + k, size + pe)
            if include_pad:
                divisors.append(end - start)
            else:
                divisors.append(np.minimum(end, size) - np.maximum(start, 0))
        scale = (kernel[0] * kernel[1]) / (divisors[0][:, None] * divisors[1][None, :]).astype(np.float64)
        padded = self.pad(node, x, (pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1]), 0.0) \
            if any(pads) or any(extra) else x
        if np.all(scale == 1.0):
            out = self.define(out_name)
            self.emit("AVERAGE_POOL_2D", [padded], [out], node, filter=kernel, stride=strides, padding="VALID")
        else:
            n, oh, ow = out_shape[0], out_shape[2], out_shape[3]
            pooled = self.g.add_tensor(_clean(out_name) + "_unscaled", (n, oh, ow, out_shape[1]))
            self.emit("AVERAGE_POOL_2D", [padded], [pooled], node, filter=kernel, stride=strides, padding="VALID")
            factor = self.g.add_constant(_clean(out_name) + "_divisor_fix",
                                         scale.reshape(1, oh, ow, 1).astype(np.float32))
            out = self.define(out_name)
            self.emit("MUL", [pooled, factor], [out], node)
        if x in self.nonnegative:
            self.nonnegative.add(out)

    # --- resizing -----------------------------------------------------------------------------------

    def op_Resize(self, node) -> None:
        """Nearest or bilinear resize of the two spatial axes, lowered to the TFLite form whose sampling
        (source indices, and weights for bilinear) equals ONNX's on this exact size; refused when none does."""
        a = _attrs(node)
        text = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in a.items()}
        mode = text.get("mode", "nearest")
        transform = text.get("coordinate_transformation_mode", "half_pixel")
        nearest_mode = text.get("nearest_mode", "round_prefer_floor")
        in_shape, out_shape = self.onnx_shape(node.input[0]), self.onnx_shape(node.output[0])
        if len(in_shape) != 4 or tuple(in_shape[:2]) != tuple(out_shape[:2]):
            raise self.unsupported(node, "only resizing the two spatial axes of a 4-D tensor")
        if mode not in ("nearest", "linear"):
            raise self.unsupported(node, f"mode={mode}; nearest and linear (bilinear) are supported")
        if int(a.get("antialias", 0)):
            raise self.unsupported(node, "antialiased resize")
        if len(node.input) > 3 and node.input[3]:
            scales = [float(out_shape[i]) / in_shape[i] for i in (2, 3)]  # sizes given: ONNX scale = out / in
        elif len(node.input) > 2 and node.input[2] and node.input[2] in self.consts:
            scales = [float(v) for v in np.asarray(self.consts[node.input[2]]).ravel()[2:4]]
        else:
            raise self.unsupported(node, "scales or sizes are not constant")
        onnx_maps = []
        for axis in range(2):
            try:
                onnx_maps.append(_onnx_sampling(mode, transform, nearest_mode, in_shape[2 + axis],
                                                out_shape[2 + axis], scales[axis]))
            except ValueError as exc:
                raise self.unsupported(node, str(exc)) from None
        x = self.use(node.input[0])
        if mode == "nearest" and self._upsample_by_repeat(node, x, in_shape, out_shape, onnx_maps):
            return
        kind = "RESIZE_NEAREST_NEIGHBOR" if mode == "nearest" else "RESIZE_BILINEAR"
        for align_corners, half_pixel in ((False, False), (False, True), (True, False)):
            tflite_maps = [_tflite_sampling(mode, align_corners, half_pixel, in_shape[2 + axis], out_shape[2 + axis])
                           for axis in range(2)]
            if all(_same_sampling(o, t) for o, t in zip(onnx_maps, tflite_maps, strict=True)):
                out = self.define(node.output[0])
                size = self.g.int32_constant(_clean(node.output[0]) + "_size", list(out_shape[2:]))
                self.emit(kind, [x, size], [out], node, align_corners=align_corners, half_pixel_centers=half_pixel)
                if x in self.nonnegative:
                    self.nonnegative.add(out)
                return
        raise self.unsupported(node, f"no TFLite {kind} samples like ONNX {mode} resize with "
                                     f"coordinate_transformation_mode={transform}"
                               + (f", nearest_mode={nearest_mode}" if mode == "nearest" else "")
                               + f" from {tuple(in_shape[2:])} to {tuple(out_shape[2:])}; "
                               + ("an integer scale factor lowers exactly" if mode == "nearest" else
                                  "a size that is the input size times the scale factor, or align_corners=True, "
                                  "lowers exactly"))

    def _upsample_by_repeat(self, node, x: str, in_shape, out_shape, onnx_maps) -> bool:
        """Nearest upsampling by one integer factor on both axes as CONCATENATION of factor**2 copies along
        channels + DEPTH_TO_SPACE (both delegated; RESIZE_NEAREST_NEIGHBOR is not)."""
        factor = out_shape[2] // in_shape[2]
        if factor < 2 or tuple(out_shape[2:]) != (in_shape[2] * factor, in_shape[3] * factor):
            return False
        for axis in range(2):
            expected = np.arange(out_shape[2 + axis]) // factor
            if not np.array_equal(onnx_maps[axis][0], expected):
                return False
        if factor > _MAX_CONCAT_INPUTS:
            return False
        rows = self._concat(node, [x] * factor, 3, x + "_repeated")
        copies = self._concat(node, [rows] * factor, 3, x + "_repeated")
        out = self.define(node.output[0])
        self.emit("DEPTH_TO_SPACE", [copies], [out], node, block_size=factor)
        if x in self.nonnegative:
            self.nonnegative.update((copies, out))
        return True


def _is_same(in_shape, kernel, strides, pads) -> bool:
    """Whether ONNX ``pads`` (top, left, bottom, right) are what TFLite's SAME padding computes."""
    for size, k, s, before, after in zip(in_shape[2:], kernel, strides, pads[:2], pads[2:], strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        if (before, after) != (total // 2, total - total // 2) or (size + before + after - k) // s + 1 != out:
            return False
    return True


# --- resize sampling: (low index, high index, weight of high) per output position of one axis ----------

def _onnx_sampling(mode: str, transform: str, nearest_mode: str, size: int, out: int, scale: float):
    """ONNX Resize's sampling of one axis (float64). Raises ValueError for what edgekit cannot lower."""
    i = np.arange(out, dtype=np.float64)
    if transform == "half_pixel":
        src = (i + 0.5) / scale - 0.5
    elif transform == "pytorch_half_pixel":
        src = (i + 0.5) / scale - 0.5 if out > 1 else np.zeros(out)
    elif transform == "align_corners":
        src = i * (size - 1) / (out - 1) if out > 1 else np.zeros(out)
    elif transform == "asymmetric":
        src = i / scale
    elif transform == "tf_half_pixel_for_nn":
        src = (i + 0.5) / scale
    else:
        raise ValueError(f"coordinate_transformation_mode={transform}")
    if mode == "nearest":
        rounding = {"floor": np.floor, "ceil": np.ceil, "round_prefer_floor": lambda v: np.ceil(v - 0.5),
                    "round_prefer_ceil": lambda v: np.floor(v + 0.5)}
        if nearest_mode not in rounding:
            raise ValueError(f"nearest_mode={nearest_mode}")
        index = np.clip(rounding[nearest_mode](src), 0, size - 1).astype(np.int64)
        return index, index, np.zeros(out)
    src = np.clip(src, 0, size - 1)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    return low, high, src - low


def _tflite_sampling(mode: str, align_corners: bool, half_pixel: bool, size: int, out: int):
    """TFLite's reference sampling of one axis (float32, as tensorflow/lite/kernels/internal/reference)."""
    f32 = np.float32
    scale = f32(size - 1) / f32(out - 1) if align_corners and out > 1 else f32(size) / f32(out)
    i = np.arange(out, dtype=f32)
    if mode == "nearest":
        offset = f32(0.5) if half_pixel else f32(0.0)
        value = (i + offset) * scale
        # TfLiteRound rounds half away from zero (values here are >= 0)
        index = np.where(value - np.floor(value) >= 0.5, np.floor(value) + 1, np.floor(value)) if align_corners \
            else np.floor(value)
        index = np.minimum(index.astype(np.int64), size - 1)
        if half_pixel:
            index = np.maximum(index, 0)
        return index, index, np.zeros(out)
    src = (i + f32(0.5)) * scale - f32(0.5) if half_pixel else i * scale
    low = np.maximum(np.floor(src), 0).astype(np.int64)
    high = np.minimum(np.ceil(src), size - 1).astype(np.int64)
    weight = src.astype(np.float64) - low
    # a clamped low edge (src < 0, low = high = 0) samples one value, as ONNX's clamped coordinate does
    weight = np.where(low == high, 0.0, weight)
    high = np.where(low == high, low, high)
    return low, high, weight


def _same_sampling(onnx_map, tflite_map, tolerance: float = 1e-5) -> bool:
    low_o, high_o, w_o = onnx_map
    low_t, high_t, w_t = tflite_map
    # where the weight is 0 only the low index matters (and where it is 1 only the high one)
    for lo_a, hi_a, w_a, lo_b, hi_b, w_b in zip(low_o, high_o, w_o, low_t, high_t, w_t, strict=True):
        a = {int(lo_a): 1.0 - w_a}
        a[int(hi_a)] = a.get(int(hi_a), 0.0) + w_a
        b = {int(lo_b): 1.0 - w_b}
        b[int(hi_b)] = b.get(int(hi_b), 0.0) + w_b
        for key in set(a) | set(b):
            if not math.isclose(a.get(key, 0.0), b.get(key, 0.0), abs_tol=tolerance):
                return False
    return True
