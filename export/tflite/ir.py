"""edgekit's NHWC graph for TFLite: tensors, ops named after TFLite builtins, and small graph helpers.

The ONNX -> TFLite lowering builds this graph, the shuffle passes and the int8 quantizer rewrite it, and
the writer serialises it. Op kinds are TFLite builtin names (``CONV_2D``, ``SPLIT`` ...); ``options`` holds
their attributes as plain Python values, so every pass can be read without the flatbuffer schema.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Quant:
    """Affine quantization ``real = scale * (q - zero_point)``; per-channel along ``axis`` when len > 1."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int) -> Quant:
        return cls(np.array([scale], dtype=np.float32), np.array([zero_point], dtype=np.int64))


@dataclass(frozen=True)
class Origin:
    """An activation's values as values of the ONNX graph it was lowered from: ONNX tensor ``onnx``, only its
    ``channels`` (indices along ONNX axis 1, in this tensor's channel order; None: all of it), times ``scale``.

    Calibration computes every range on the ONNX graph through this (``calibrate.onnx_ranges``). The layout is
    not recorded: a range does not depend on where the values sit.
    """

    onnx: str
    channels: tuple[int, ...] | None = None
    scale: float = 1.0
    #: an inner value of a decomposed op, computed from ``onnx`` (its input): ``("layer_norm", step, axis,
    #: epsilon, scale initializer or "")``, ``step`` one of ``LAYER_NORM_STEPS``
    derived: tuple = ()

    def restricted(self, rows) -> Origin:
        """The origin of channels ``rows`` (indices into this tensor's channels) of this tensor."""
        rows = tuple(int(r) for r in rows)
        channels = rows if self.channels is None else tuple(self.channels[r] for r in rows)
        return Origin(self.onnx, channels, self.scale, self.derived)

    def scaled(self, factor: float) -> Origin:
        """The origin of this tensor times ``factor``."""
        return Origin(self.onnx, self.channels, self.scale * float(factor), self.derived)


#: The inner values of a LayerNormalization over the axes from ``axis`` on, in the order the lowering computes
#: them: mean, x - mean, its square, variance, variance + epsilon, its reciprocal root, the normalised x, and
#: that times the scale (when a bias follows).
LAYER_NORM_STEPS = ("mean", "centered", "square", "var", "var_eps", "rstd", "normalized", "scaled")


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # "float32", "int8", "int32", "int64", "uint8"
    data: np.ndarray | None = None  # constants only
    quant: Quant | None = None
    origin: Origin | None = None  # activations: where their values are in the ONNX graph, when they are there

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class Op:
    kind: str
    inputs: list[str]
    outputs: list[str]
    options: dict = field(default_factory=dict)
    name: str = ""  # the source node this op came from, for error messages and reports


@dataclass
class Graph:
    """A single-subgraph model. Tensor names are unique; ops are kept in execution order."""

    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    # --- building -----------------------------------------------------------------------------------

    def unique(self, base: str) -> str:
        """A tensor name not yet used, derived deterministically from ``base``."""
        if base not in self.tensors:
            return base
        i = 1
        while f"{base}_{i}" in self.tensors:
            i += 1
        return f"{base}_{i}"

    def add_tensor(self, name: str, shape, dtype: str = "float32", quant: Quant | None = None,
                   origin: Origin | None = None) -> str:
        name = self.unique(name)
        self.tensors[name] = Tensor(name, tuple(int(d) for d in shape), dtype, None, quant, origin)
        return name

    def add_constant(self, name: str, value: np.ndarray, quant: Quant | None = None) -> str:
        name = self.unique(name)
        value = np.array(value, order="C")  # np.ascontiguousarray would turn a 0-d axis into 1-d
        self.tensors[name] = Tensor(name, tuple(value.shape), str(value.dtype), value, quant)
        return name

    def int32_constant(self, name: str, values) -> str:
        return self.add_constant(name, np.asarray(values, dtype=np.int32))

    # --- reading ------------------------------------------------------------------------------------

    def producers(self) -> dict[str, Op]:
        return {out: op for op in self.ops for out in op.outputs}

    def consumers(self) -> dict[str, list[Op]]:
        users: dict[str, list[Op]] = defaultdict(list)
        for op in self.ops:
            for name in op.inputs:
                if name:
                    users[name].append(op)
        return users

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name].shape

    def histogram(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for op in self.ops:
            counts[op.kind] += 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def remove_unused(self) -> None:
        """Drop ops whose outputs nobody reads (and that are not graph outputs), then unused tensors."""
        changed = True
        while changed:
            users = self.consumers()
            keep = [op for op in self.ops if any(o in self.outputs or users.get(o) for o in op.outputs)]
            changed = len(keep) != len(self.ops)
            self.ops = keep
        used = set(self.inputs) | set(self.outputs)
        for op in self.ops:
            used.update(n for n in op.inputs if n)
            used.update(op.outputs)
        self.tensors = {k: v for k, v in self.tensors.items() if k in used}

    def rename(self, old: str, new: str) -> None:
        """Give tensor ``old`` the unused name ``new`` everywhere (ops, inputs, outputs)."""
        tensor = self.tensors.pop(old)
        tensor.name = new
        self.tensors[new] = tensor
        for op in self.ops:
            op.inputs = [new if n == old else n for n in op.inputs]
            op.outputs = [new if n == old else n for n in op.outputs]
        self.inputs = [new if n == old else n for n in self.inputs]
        self.outputs = [new if n == old else n for n in self.outputs]

    def replace_uses(self, old: str, new: str) -> None:
        for op in self.ops:
            op.inputs = [new if n == old else n for n in op.inputs]
        self.outputs = [new if n == old else n for n in self.outputs]
