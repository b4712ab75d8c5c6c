"""Per-op LiteRT + XNNPACK times of .tflite files, each op timed alone as a one-op model cut from the file.

    python benchmarks/tflite_op_times.py A.tflite [B.tflite ...] [--threads 1] [--runs 200] [--top 15] [--json]

LiteRT's Python interpreter has no op profiler (``android_bench.host``), and the machine has no
``benchmark_model``; so every op of the file's main subgraph is written out as its own model (the op, its
constant inputs, its other inputs as model inputs) and timed on LiteRT with XNNPACK (an op XNNPACK does not
take runs on the builtin kernel, as it would in the file): the fastest of ``--runs`` invocations, less the
fastest one-op RESHAPE model of the file (the interpreter's own overhead; nothing when there is none).
Fastest-of-N estimates the unshared time on a loaded machine. Printed per file: the sum per op type and
output type (an int8 file's float islands apart), the slowest ops, and the whole file's fastest invocation
beside the sum of its ops.

Caveats: an op timed alone misses what XNNPACK does across ops in one partition (a constant PAD folded into
the next convolution's padding, fused activations across nodes, cache reuse), so the sum differs from the
whole file; compare two files op type by op type, not by the sum alone. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _builtin_names() -> dict[int, str]:
    schema = _schema()
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def one_op_models(content: bytes) -> list[tuple[str, str, str, bytes]]:
    """(op kind, first output tensor name, its type, one-op model bytes) for every op of ``content``'s first
    subgraph."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    graph = model.subgraphs[0]
    names = _builtin_names()
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    out = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
        used = [i for i in list(op.inputs) + list(op.outputs) if i >= 0]
        used = list(dict.fromkeys(used))
        remap = {old: new for new, old in enumerate(used)}
        buffers = [schema.BufferT()]
        tensors = []
        inputs = []
        for old in used:
            t = graph.tensors[old]
            src = model.buffers[t.buffer]
            tensor = schema.TensorT.InitFromObj(schema.Tensor.GetRootAs(_packed(t, flatbuffers), 0))
            if src.data is not None and len(src.data) > 0:
                buffers.append(src)
                tensor.buffer = len(buffers) - 1
            else:
                tensor.buffer = 0
                if old in op.inputs:
                    inputs.append(remap[old])
            tensors.append(tensor)
        sub = schema.SubGraphT()
        sub.tensors = tensors
        sub.inputs = inputs
        sub.outputs = [remap[i] for i in op.outputs if i >= 0]
        new_op = schema.OperatorT.InitFromObj(schema.Operator.GetRootAs(_packed(op, flatbuffers), 0))
        new_op.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
        new_op.outputs = [remap[i] for i in op.outputs]
        new_op.intermediates = []
        sub.operators = [new_op]
        one = schema.ModelT()
        one.version = model.version
        one.operatorCodes = model.operatorCodes
        one.subgraphs = [sub]
        one.buffers = buffers
        one.description = b"one op"
        builder = flatbuffers.Builder(1024)
        builder.Finish(one.Pack(builder), file_identifier=b"TFL3")
        name = graph.tensors[op.outputs[0]].name
        out.append((kind, name.decode() if isinstance(name, bytes) else str(name),
                    types.get(graph.tensors[op.outputs[0]].type, "?"), bytes(builder.Output())))
    return out


def _packed(obj, flatbuffers) -> bytearray:
    builder = flatbuffers.Builder(256)
    builder.Finish(obj.Pack(builder))
    return builder.Output()


def _interpreter(content: bytes, threads: int):
    from edgekit.runtimes.litert_runtime import interpreter_with_random_inputs

    return interpreter_with_random_inputs(content, threads, int_span=100)


def fastest_ms(content: bytes, threads: int, runs: int) -> float:
    """The fastest of ``runs`` invocations of the model ``content`` (after 3 warm-up calls), in ms."""
    interpreter = _interpreter(content, threads)
    for _ in range(3):
        interpreter.invoke()
    best = float("inf")
    clock = time.perf_counter
    for _ in range(runs):
        start = clock()
        interpreter.invoke()
        best = min(best, clock() - start)
    return best * 1e3


def profile(path: str, threads: int, runs: int) -> dict:
    """Per-op fastest times (ms, interpreter overhead subtracted) of the file at ``path``."""
    content = Path(path).read_bytes()
    ops = one_op_models(content)
    floor = min((fastest_ms(m, threads, runs) for k, _, _, m in ops if k == "RESHAPE"), default=0.0)
    rows = []
    for index, (kind, name, dtype, model) in enumerate(ops):
        try:
            ms = max(0.0, fastest_ms(model, threads, runs) - floor)
        except Exception as exc:  # noqa: BLE001  an op that cannot run alone is listed, not dropped
            rows.append({"index": index, "op": kind, "dtype": dtype, "name": name, "ms": None, "error": str(exc)[:120]})
            continue
        rows.append({"index": index, "op": kind, "dtype": dtype, "name": name, "ms": ms})
    whole = fastest_ms(content, threads, max(20, runs // 5))
    by_type: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["ms"] is not None:
            by_type[f"{row['op']} ({row['dtype']})"].append(row["ms"])
    return {"path": path, "threads": threads, "whole_ms": whole, "overhead_ms": floor,
            "sum_ms": sum(sum(v) for v in by_type.values()),
            "by_type": {k: {"count": len(v), "ms": sum(v)} for k, v in sorted(by_type.items(),
                                                                               key=lambda kv: -sum(kv[1]))},
            "ops": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [profile(f, args.threads, args.runs) for f in args.files]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"== {r['path']}  whole file {r['whole_ms']:.3f} ms, sum of ops {r['sum_ms']:.3f} ms "
              f"(interpreter overhead {r['overhead_ms'] * 1e3:.1f} us subtracted per op), {args.threads} thread(s)")
        for kind, v in r["by_type"].items():
            print(f"  {kind:<34} x{v['count']:<4} {v['ms']:8.3f} ms")
        print("  slowest ops:")
        for row in sorted((x for x in r["ops"] if x["ms"] is not None), key=lambda x: -x["ms"])[:args.top]:
            print(f"    #{row['index']:<4} {row['op']:<20} {row['ms']:8.3f} ms  {row['name'][-70:]}")
        for row in (x for x in r["ops"] if x["ms"] is None):
            print(f"    #{row['index']:<4} {row['op']:<20} not timed alone: {row['error']}")


if __name__ == "__main__":
    main()
