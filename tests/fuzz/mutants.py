"""Deterministic mutants of a .tflite or .onnx file: byte-level damage and structure-aware edits.

``mutants(content, suffix, count, seed)`` yields ``(label, bytes)``; the same arguments give the same
mutants. Byte-level: bit flips, overwritten runs, truncation, inserted and deleted chunks. Structure-aware:
the file is parsed, one field is changed to a plausible but wrong value (a tensor index, a shape, a buffer,
an operator code, a quantisation scale; an ONNX node's input, op type, attribute or initializer) and it
is serialised again, so the result is a valid flatbuffer or protobuf with damaged contents.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np


def mutants(content: bytes, suffix: str, count: int, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """``count`` mutants of ``content``, alternating byte-level and structure-aware ones."""
    rng = random.Random(seed)
    structural = _tflite_mutation if suffix == ".tflite" else _onnx_mutation
    parsed = _parse(content, suffix)
    for i in range(count):
        if i % 2 == 0:
            label, data = _byte_mutation(content, rng)
        else:
            label, data = structural(parsed, rng)
        yield f"{i:04d}-{label}", data


def _parse(content: bytes, suffix: str):
    if suffix == ".tflite":
        from ai_edge_litert import schema_py_generated as schema

        return schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    import onnx

    return onnx.load_from_string(content)


def _byte_mutation(content: bytes, rng: random.Random) -> tuple[str, bytes]:
    data = bytearray(content)
    kind = rng.choice(["flip", "overwrite", "truncate", "insert", "delete", "header"])
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            pos = rng.randrange(len(data))
            data[pos] ^= 1 << rng.randrange(8)
    elif kind == "overwrite":
        pos, n = rng.randrange(len(data)), rng.randint(1, 64)
        data[pos : pos + n] = bytes(rng.randrange(256) for _ in range(min(n, len(data) - pos)))
    elif kind == "truncate":
        del data[rng.randrange(1, len(data)) :]
    elif kind == "insert":
        pos = rng.randrange(len(data))
        data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == "delete":
        pos = rng.randrange(len(data))
        del data[pos : pos + rng.randint(1, 64)]
    else:  # the first bytes hold the root offset and file identifier (TFLite) or the first fields (ONNX)
        for pos in rng.sample(range(min(16, len(data))), 2):
            data[pos] = rng.randrange(256)
    return kind, bytes(data)


def _wrong_index(rng: random.Random, size: int) -> int:
    return rng.choice([-1, -2, size, size + 1, size * 2 + 7, 2**31 - 1, rng.randrange(max(size, 1))])


def _wrong_unsigned(rng: random.Random, size: int) -> int:
    return rng.choice([size, size + 1, size * 2 + 7, 2**32 - 1, rng.randrange(max(size, 1))])


def _tflite_mutation(model, rng: random.Random) -> tuple[str, bytes]:
    import copy

    import flatbuffers

    model = copy.deepcopy(model)
    graph = model.subgraphs[0]
    n_tensors, n_buffers = len(graph.tensors), len(model.buffers)
    kind = rng.choice(["op-input", "op-output", "shape", "buffer", "opcode", "scale", "graph-io", "data-size",
                       "shape-permute", "zero-point", "op-options", "drop-op"])
    op = rng.choice(graph.operators)
    tensor = rng.choice(graph.tensors)
    if kind == "op-input" and op.inputs is not None and len(op.inputs):
        op.inputs[rng.randrange(len(op.inputs))] = _wrong_index(rng, n_tensors)
    elif kind == "op-output" and op.outputs is not None and len(op.outputs):
        op.outputs[rng.randrange(len(op.outputs))] = _wrong_index(rng, n_tensors)
    elif kind == "shape" and tensor.shape is not None and len(tensor.shape):
        tensor.shape[rng.randrange(len(tensor.shape))] = rng.choice([0, 1, 2, 3, 7, 1000, 65536, -1])
    elif kind == "shape-permute" and tensor.shape is not None and len(tensor.shape) > 1:
        tensor.shape = list(reversed(list(tensor.shape)))
    elif kind == "buffer":
        tensor.buffer = _wrong_unsigned(rng, n_buffers) if rng.random() < 0.5 else rng.randrange(n_buffers)
    elif kind == "opcode":
        op.opcodeIndex = _wrong_unsigned(rng, len(model.operatorCodes))
    elif kind in ("scale", "zero-point") and tensor.quantization is not None and tensor.quantization.scale is not None:
        q = tensor.quantization
        if kind == "scale":
            q.scale = np.asarray(q.scale, dtype=np.float32) * np.float32(rng.choice([0.0, 0.25, 4.0, 1e30, -1.0]))
        else:
            q.zeroPoint = np.asarray([rng.choice([-1000, 127, 255, 2**40])] * len(q.scale), dtype=np.int64)
    elif kind == "graph-io":
        graph.inputs = [_wrong_index(rng, n_tensors)]
    elif kind == "data-size":
        with_data = [b for b in model.buffers if b.data is not None and len(b.data) > 4]
        if with_data:
            buf = rng.choice(with_data)
            buf.data = np.asarray(buf.data)[: rng.randrange(len(buf.data))]
    elif kind == "op-options":
        op.builtinOptionsType = rng.randrange(1, 40)
    elif kind == "drop-op" and len(graph.operators) > 1:
        graph.operators.pop(rng.randrange(len(graph.operators)))
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return kind, bytes(builder.Output())


def _onnx_mutation(model, rng: random.Random) -> tuple[str, bytes]:
    from onnx import numpy_helper

    m = type(model)()
    m.CopyFrom(model)
    graph = m.graph
    kind = rng.choice(["node-input", "op-type", "attribute", "initializer-shape", "initializer-drop",
                       "input-shape", "node-drop", "output-name", "opset", "initializer-data"])
    node = rng.choice(list(graph.node))
    if kind == "node-input" and node.input:
        node.input[rng.randrange(len(node.input))] = rng.choice(["missing", "", graph.output[0].name])
    elif kind == "op-type":
        node.op_type = rng.choice(["Conv", "Reshape", "NoSuchOp", "Transpose", "Split", "Add"])
    elif kind == "attribute" and node.attribute:
        attr = rng.choice(list(node.attribute))
        if attr.ints:
            attr.ints[rng.randrange(len(attr.ints))] = rng.choice([-1, 0, 99, 2**40])
        elif attr.i or attr.type == 2:
            attr.i = rng.choice([-5, 0, 3, 2**40])
        else:
            attr.name = "bogus"
    elif kind in ("initializer-shape", "initializer-data") and graph.initializer:
        init = rng.choice(list(graph.initializer))
        array = numpy_helper.to_array(init)
        if kind == "initializer-shape" and array.size > 1:
            init.CopyFrom(numpy_helper.from_array(array.reshape(-1)[: array.size // 2], init.name))
        elif array.dtype.kind == "f":
            init.CopyFrom(numpy_helper.from_array(array * np.asarray(rng.choice([0.0, 1e30, -4.0]), array.dtype),
                                                  init.name))
        else:
            init.CopyFrom(numpy_helper.from_array(np.flip(array).copy() + np.ones_like(array), init.name))
    elif kind == "initializer-drop" and graph.initializer:
        graph.initializer.pop(rng.randrange(len(graph.initializer)))
    elif kind == "input-shape":
        dims = graph.input[0].type.tensor_type.shape.dim
        dims[rng.randrange(len(dims))].dim_value = rng.choice([0, 1, 5, 100000])
    elif kind == "node-drop":
        graph.node.pop(rng.randrange(len(graph.node)))
    elif kind == "output-name":
        graph.output[0].name = "nowhere"
    elif kind == "opset":
        m.opset_import[0].version = rng.choice([1, 7, 99])
    return kind, m.SerializeToString()
