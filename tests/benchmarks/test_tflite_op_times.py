"""benchmarks/tflite_op_times.py cuts a .tflite file into one-op models: each is a valid model holding that op
alone, with the file's constants, and computes what the op computes in the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.export.onnx_export import simplify, torch_to_onnx
from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
from edgekit.export.tflite.writer import write_tflite
from edgekit.runtimes.litert_runtime import load_interpreter_module


@pytest.fixture(scope="module")
def op_times(load_benchmark):
    return load_benchmark("tflite_op_times")


def test_one_op_models_compute_the_files_ops(op_times, tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1)).eval()
    graph, _ = onnx_to_tflite_graph(simplify(torch_to_onnx(module, (1, 3, 8, 8))))
    content = write_tflite(graph)
    cut = op_times.one_op_models(content)
    assert [kind for kind, *_ in cut] == [op.kind for op in graph.ops]
    assert all(dtype == "float32" for _, _, dtype, _ in cut)

    x = np.random.default_rng(0).standard_normal((1, 8, 8, 3)).astype(np.float32)
    interpreter_class = load_interpreter_module()[0]
    value = x
    for _, _, _, model in cut:  # the one-op models chained reproduce the whole file
        one = interpreter_class(model_content=model, num_threads=1)
        one.allocate_tensors()
        one.set_tensor(one.get_input_details()[0]["index"], value)
        one.invoke()
        value = one.get_tensor(one.get_output_details()[0]["index"])
    whole = interpreter_class(model_content=content, num_threads=1)
    whole.allocate_tensors()
    whole.set_tensor(whole.get_input_details()[0]["index"], x)
    whole.invoke()
    np.testing.assert_allclose(value.ravel(), whole.get_tensor(whole.get_output_details()[0]["index"]).ravel(),
                               rtol=1e-6, atol=1e-6)

    path = tmp_path / "m.tflite"
    path.write_bytes(content)
    profile = op_times.profile(str(path), threads=1, runs=3)
    assert sum(v["count"] for v in profile["by_type"].values()) == len(graph.ops)
    assert all(row["ms"] is not None and row["ms"] >= 0 for row in profile["ops"])
