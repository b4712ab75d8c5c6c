"""Exported files the analysis does not fully know: unknown ops are "other" with names, never a crash."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.analysis import analyze
from edgekit.errors import ModelFileError


def unknown_op_onnx(path):
    weight = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("FancyWarp", ["c"], ["f"], name="warp", domain="com.example"),
        helper.make_node("Relu", ["f"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, path)
    return path


def test_unknown_onnx_op_counts_as_other(tmp_path):
    analysis = analyze(unknown_op_onnx(tmp_path / "odd.onnx"))
    assert analysis.other_ops == {"FancyWarp": 1}
    warp = next(layer for layer in analysis.layers if layer.name == "warp")
    assert warp.kind == "other" and "FancyWarp" in warp.note
    assert warp.memory_access == 256 + 1  # its input's shape is known; its output's is not: 1 element
    assert analysis.mult_adds == 64 * 4 * 4
    assert any("FancyWarp" in note for note in analysis.notes)


def test_unknown_tflite_op_counts_as_other(tmp_path):
    from ai_edge_litert import schema_py_generated as schema

    from edgekit.export.tflite.ir import Graph, Op
    from edgekit.export.tflite.writer import write_tflite

    graph = Graph()
    x = graph.add_tensor("x", (1, 8, 8, 4))
    w = graph.add_constant("w", np.ones((4, 1, 1, 4), np.float32))
    b = graph.add_constant("b", np.zeros(4, np.float32))
    y = graph.add_tensor("y", (1, 8, 8, 4))
    z = graph.add_tensor("z", (1, 8, 8, 4))
    graph.ops = [Op("CONV_2D", [x, w, b], [y], {"stride": (1, 1), "padding": "VALID"}), Op("RELU", [y], [z])]
    graph.inputs, graph.outputs = [x], [z]
    model = schema.ModelT.InitFromPackedBuf(bytearray(write_tflite(graph, description="t", metadata={})), 0)
    relu_code = schema.BuiltinOperator.RELU
    relu = next(c for c in model.operatorCodes if max(c.builtinCode, c.deprecatedBuiltinCode) == relu_code)
    relu.builtinCode = relu.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    relu.customCode = "MyWarp"
    for op in model.subgraphs[0].operators:
        if model.operatorCodes[op.opcodeIndex] is relu:
            op.builtinOptionsType, op.builtinOptions = 0, None
    builder = __import__("flatbuffers").Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "odd.tflite"
    path.write_bytes(bytes(builder.Output()))
    analysis = analyze(path)
    assert analysis.other_ops == {"MyWarp": 1}
    assert analysis.mult_adds == 64 * 4 * 4
    assert [layer.kind for layer in analysis.layers] == ["conv1x1", "other"]


@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
def test_corrupt_and_missing_files_raise_model_file_error(tmp_path, suffix):
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError):
        analyze(bad)
    with pytest.raises(ModelFileError):
        analyze(tmp_path / f"missing{suffix}")
