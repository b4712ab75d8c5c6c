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
