"""Structural validation of a .tflite flatbuffer before any native runtime sees it.

LiteRT trusts the indices, shapes and buffer sizes inside a file: a valid flatbuffer whose operator names
tensor 999 of 80, or whose weight buffer is shorter than its shape, can make the interpreter or XNNPACK
read out of bounds and die with SIGSEGV. This module reads the file with the schema's pure-Python reader
and checks every cross-reference, so such damage becomes one line naming what is wrong. It cannot prove a
file safe (that is what ``runtimes.vetting``'s isolated first run is for); it catches what can be checked.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgekit.errors import ModelFileError

# Bytes per element of the fixed-size tensor types (schema TensorType values); others are not size-checked.
_ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2,
                  21: 1, 22: 1}
_MAX_TENSOR_TYPE = 22
_MAX_RANK = 8


class _Damage(Exception):
    """One structural problem; turned into a ModelFileError naming the file."""


def validate_tflite(content: bytes, name: str = "model.tflite") -> None:
    """Check that ``content`` is a .tflite flatbuffer whose cross-references are all in range.

    Checked: the TFL3 identifier and root offset; every vector's length against the file size; operator
    code indices, tensor indices of operators and subgraph inputs/outputs, buffer indices of tensors;
    tensor types and ranks; constant buffers against their tensor's shape and type; buffers stored outside
    the flatbuffer (offset/size) within the file; per-channel quantisation parameters against the tensor.
    Raises ``ModelFileError`` (one line naming ``name``, the first problem and the fix).
    """
    try:
        _validate(content)
    except _Damage as exc:
        raise ModelFileError(f"{name} is damaged: {exc}; re-export it (or restore it from a good copy)") from None
    except Exception as exc:  # the generated reader raises struct/index/unicode errors on broken offsets
        kind = exc.__class__.__name__ if exc.__class__.__module__ == "builtins" else (
            f"{exc.__class__.__module__}.{exc.__class__.__name__}")
        raise ModelFileError(
            f"{name} is not a readable TFLite flatbuffer ({kind} while reading its structure); "
            "it may be truncated or corrupted: re-export it"
        ) from None


def validate_tflite_file(path: str | Path) -> None:
    """``validate_tflite`` over a file's bytes."""
    path = Path(path)
    validate_tflite(path.read_bytes(), str(path))


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _validate(content: bytes) -> None:
    size = len(content)
    if size < 8:
        raise _Damage(f"{size} bytes is too short for a flatbuffer")
    if content[4:8] != b"TFL3":
        raise _Damage(f"its file identifier is {content[4:8]!r}, not b'TFL3' (is it a .tflite file?)")
    root = int.from_bytes(content[0:4], "little")
    if not 8 <= root < size:
        raise _Damage(f"its root table offset {root} lies outside the {size}-byte file")
    schema = _schema()
    model = schema.Model.GetRootAs(content, 0)

    def length(count: int, what: str, item_bytes: int = 4) -> int:
        if count < 0 or count * item_bytes > size:
            raise _Damage(f"{what} claims {count} entries, more than the file can hold")
        return count

    n_codes = length(model.OperatorCodesLength(), "the operator code list")
    n_buffers = length(model.BuffersLength(), "the buffer list")
    n_subgraphs = length(model.SubgraphsLength(), "the subgraph list")
    if n_subgraphs < 1:
        raise _Damage("it has no subgraph")
    if n_buffers < 1:
        raise _Damage("it has no buffers (buffer 0 must exist)")
    for i in range(n_codes):
        code = model.OperatorCodes(i)
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if builtin < 0:
            raise _Damage(f"operator code {i} has a negative builtin code {builtin}")
    buffer_bytes = [_buffer_length(model.Buffers(i), i, size, length) for i in range(n_buffers)]
    for s in range(n_subgraphs):
        _validate_subgraph(model.Subgraphs(s), s, n_codes, buffer_bytes, length)
    n_meta = length(model.MetadataLength(), "the metadata list")
    for i in range(n_meta):
        if not 0 <= model.Metadata(i).Buffer() < n_buffers:
            raise _Damage(f"metadata entry {i} names buffer {model.Metadata(i).Buffer()} of {n_buffers}")


def _buffer_length(buffer, index: int, size: int, length) -> int:
    """The number of bytes buffer ``index`` holds (in the flatbuffer or after it)."""
    data = length(buffer.DataLength(), f"buffer {index}", 1)
    offset, extent = int(buffer.Offset()), int(buffer.Size())
    if offset > 1:  # large models keep buffers after the flatbuffer: offset and size in the file
        if offset + extent > size:
            raise _Damage(f"buffer {index} spans bytes {offset}..{offset + extent}, past the end of the "
                          f"{size}-byte file")
        return extent
    return data


def _validate_subgraph(graph, s: int, n_codes: int, buffer_bytes: list[int], length) -> None:
    where = f"subgraph {s}"
    n_tensors = length(graph.TensorsLength(), f"{where}'s tensor list")
    n_ops = length(graph.OperatorsLength(), f"{where}'s operator list")
    for t in range(n_tensors):
        _validate_tensor(graph.Tensors(t), f"{where} tensor {t}", buffer_bytes, length)
    for kind, count, get in (("input", graph.InputsLength(), graph.Inputs), ("output", graph.OutputsLength(),
                                                                             graph.Outputs)):
        for i in range(length(count, f"{where}'s {kind} list")):
            if not 0 <= get(i) < n_tensors:
                raise _Damage(f"{where}'s {kind} {i} names tensor {get(i)} of {n_tensors}")
    for o in range(n_ops):
        op = graph.Operators(o)
        if not 0 <= op.OpcodeIndex() < n_codes:
            raise _Damage(f"{where} operator {o} names operator code {op.OpcodeIndex()} of {n_codes}")
        for i in range(length(op.InputsLength(), f"{where} operator {o}'s inputs")):
            if not -1 <= op.Inputs(i) < n_tensors:  # -1: an omitted optional input
                raise _Damage(f"{where} operator {o} input {i} names tensor {op.Inputs(i)} of {n_tensors}")
        for i in range(length(op.OutputsLength(), f"{where} operator {o}'s outputs")):
            if not 0 <= op.Outputs(i) < n_tensors:
                raise _Damage(f"{where} operator {o} output {i} names tensor {op.Outputs(i)} of {n_tensors}")
        for i in range(length(op.IntermediatesLength(), f"{where} operator {o}'s intermediates")):
            if not 0 <= op.Intermediates(i) < n_tensors:
                raise _Damage(f"{where} operator {o} intermediate {i} names tensor {op.Intermediates(i)}")


def _validate_tensor(tensor, where: str, buffer_bytes: list[int], length) -> None:
    kind = int(tensor.Type())
    if not 0 <= kind <= _MAX_TENSOR_TYPE:
        raise _Damage(f"{where} has unknown type {kind}")
    rank = length(tensor.ShapeLength(), f"{where}'s shape")
    if rank > _MAX_RANK:
        raise _Damage(f"{where} has rank {rank} (more than {_MAX_RANK})")
    shape = [int(tensor.Shape(i)) for i in range(rank)]
    if any(d < 0 for d in shape):
        raise _Damage(f"{where} has a negative dimension in shape {shape}")
    signature = [int(tensor.ShapeSignature(i)) for i in range(length(tensor.ShapeSignatureLength(), where))]
    if signature and (len(signature) != rank or any(d < -1 for d in signature)):
        raise _Damage(f"{where} has shape signature {signature} that does not fit shape {shape}")
    buffer = int(tensor.Buffer())
    if not 0 <= buffer < len(buffer_bytes):
        raise _Damage(f"{where} names buffer {buffer} of {len(buffer_bytes)}")
    held = buffer_bytes[buffer]
    elements = math.prod(shape)
    if held and kind in _ELEMENT_BYTES and held != elements * _ELEMENT_BYTES[kind]:
        raise _Damage(f"{where} has shape {shape} ({elements * _ELEMENT_BYTES[kind]} bytes) but its buffer "
                      f"{buffer} holds {held} bytes")
    quant = tensor.Quantization()
    if quant is None:
        return
    scales = length(quant.ScaleLength(), f"{where}'s scales")
    points = length(quant.ZeroPointLength(), f"{where}'s zero points", 8)
    if scales > 1 or points > 1:
        axis = int(quant.QuantizedDimension())
        if not 0 <= axis < max(rank, 1) or (rank and shape[axis] not in (scales, 0)):
            raise _Damage(f"{where} has {scales} per-channel scales along axis {axis} of shape {shape}")
        if points not in (0, scales):
            raise _Damage(f"{where} has {scales} scales but {points} zero points")
    if scales:
        values = quant.ScaleAsNumpy()
        if not np.all(np.isfinite(values)):
            raise _Damage(f"{where} has a non-finite quantisation scale")
