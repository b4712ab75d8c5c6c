"""Facts about a .tflite file read through the real LiteRT interpreter."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.runtimes.litert_runtime import load_interpreter_module


@dataclass(frozen=True)
class Delegation:
    """What LiteRT's default XNNPACK delegate takes of a model: ``partitions`` (1 = every delegated op in one
    partition) and ``undelegated``, the op kinds (in graph order) left to LiteRT's builtin kernels."""

    partitions: int
    undelegated: list[str]


def xnnpack_delegation(content: bytes, threads: int = 1) -> Delegation:
    """How LiteRT's XNNPACK delegate splits this model, from one interpreter.

    After the default delegate is applied, each partition appears as one extra node named "DELEGATE" whose
    inputs and outputs are the partition's boundary. The partition count cannot see an op left out at either
    end of the graph, and LiteRT's Python API exposes no execution plan, so the ops left out are read from the
    tensors: an original node whose output a DELEGATE node produces is inside a partition; one whose output a
    DELEGATE node reads, that is a model output, or that a node outside every partition reads (and that no
    DELEGATE produces) runs outside; any other node feeds only ops inside a partition and is inside one too.
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
    read_outside: set[int] = set()  # tensors read by nodes already found outside
    outside: list[int] = []
    for i in reversed([i for i in nodes if names[i] != "DELEGATE"]):  # a node's readers come after it
        if not outputs[i] & produced and outputs[i] & (boundary | read_outside):
            outside.append(i)
            read_outside |= inputs[i]
    return Delegation(len(delegates), [names[i] for i in sorted(outside)])


def xnnpack_partitions(content: bytes, threads: int = 1) -> int:
    """How many XNNPACK delegate partitions LiteRT makes of this model (``xnnpack_delegation``)."""
    return xnnpack_delegation(content, threads).partitions


def undelegated_ops(content: bytes, threads: int = 1) -> list[str]:
    """The op kinds (in graph order) that XNNPACK leaves to LiteRT's builtin kernels (``xnnpack_delegation``)."""
    return xnnpack_delegation(content, threads).undelegated
