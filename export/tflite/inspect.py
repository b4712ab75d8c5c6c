"""Facts about a .tflite file read through the real LiteRT interpreter."""

from __future__ import annotations

from edgekit.runtimes.litert_runtime import load_interpreter_module


def xnnpack_partitions(content: bytes, threads: int = 1) -> int:
    """How many XNNPACK delegate partitions LiteRT makes of this model (1 = every op in one partition).

    After the default delegate is applied, each partition appears as one extra node named "DELEGATE".
    """
    interpreter_class = load_interpreter_module()[0]
    interpreter = interpreter_class(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    native = interpreter._interpreter  # the public API exposes no execution plan
    return sum(1 for i in range(native.NumNodes()) if native.NodeName(i) == "DELEGATE")


def undelegated_ops(content: bytes, threads: int = 1) -> list[str]:
    """The op kinds (in graph order) that XNNPACK leaves to LiteRT's builtin kernels in this model.

    ``xnnpack_partitions`` cannot see an op left out at either end of the graph (the partition count stays 1).
    LiteRT's Python API exposes no execution plan, so this reads it from the tensors: after delegation each
    partition is one "DELEGATE" node whose inputs and outputs are the partition's boundary. An original node
    whose output a DELEGATE node produces is inside a partition; one whose output a DELEGATE node reads, that
    is a model output, or that a node outside every partition reads (and that no DELEGATE produces) runs
    outside; any other node feeds only ops inside a partition and is inside one too.
    """
    interpreter_class = load_interpreter_module()[0]
    interpreter = interpreter_class(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    native = interpreter._interpreter  # the public API exposes no execution plan
    nodes = range(native.NumNodes())
    names = [native.NodeName(i) for i in nodes]
    inputs = [set(native.NodeInputs(i)) for i in nodes]
    outputs = [set(native.NodeOutputs(i)) for i in nodes]
    delegates = [i for i in nodes if names[i] == "DELEGATE"]
    produced = set().union(*(outputs[i] for i in delegates))
    boundary = set().union(*(inputs[i] for i in delegates)) | set(native.OutputIndices())
    original = [i for i in nodes if names[i] != "DELEGATE"]
    outside: set[int] = set()
    for i in reversed(original):  # a node's readers come after it
        if outputs[i] & produced:
            continue
        if outputs[i] & boundary or any(j in outside and inputs[j] & outputs[i] for j in original):
            outside.add(i)
    return [names[i] for i in sorted(outside)]
