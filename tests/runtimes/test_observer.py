"""The activation observer returns exactly what the engines give for intermediate tensors, whatever it batches."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from runtime_models import random_input

from edgekit.export.tflite.ir import Graph, Op
from edgekit.export.tflite.writer import write_tflite
from edgekit.runtimes.observer import ActivationObserver, LiteRTObserver, ObservationError, observe


def _direct(model: onnx.ModelProto, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """The named tensors from a plain ONNX Runtime session with them as extra outputs, one image per run."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    runs = [session.run(names, {input_name: x[i : i + 1]}) for i in range(len(x))]
    return {name: np.concatenate([r[k] for r in runs]) for k, name in enumerate(names)}


def _intermediates(model: onnx.ModelProto) -> list[str]:
    outputs = {o.name for o in model.graph.output}
    return [o for n in model.graph.node for o in n.output if o not in outputs]


@pytest.fixture(scope="module")
def cnn_model(cnn_onnx) -> onnx.ModelProto:
    return onnx.load(str(cnn_onnx))


def test_observer_returns_what_a_direct_run_with_extra_outputs_returns(cnn_model):
    names = _intermediates(cnn_model)
    x = random_input((11, 3, 16, 16), seed=4)
    with ActivationObserver(cnn_model, names) as observer:
        assert observer.batch > 1  # the batch-1 export runs several images at once
        got = observer.run(x)
    expected = _direct(cnn_model, names, x)
    assert list(got) == names
    for name in names:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_iterate_yields_batches_in_order_and_observe_closes(cnn_model):
    names = _intermediates(cnn_model)[:2]
    x = random_input((5, 3, 16, 16), seed=5)
    parts = list(observe(cnn_model, names, x, max_batch=2))
    assert [len(p[names[0]]) for p in parts] == [2, 2, 1]
    joined = np.concatenate([p[names[0]] for p in parts])
    np.testing.assert_array_equal(joined, _direct(cnn_model, names, x)[names[0]])


def test_graph_input_and_output_can_be_observed(cnn_model):
    names = [cnn_model.graph.input[0].name, cnn_model.graph.output[0].name]
    x = random_input((3, 3, 16, 16), seed=6)
    got = ActivationObserver(cnn_model, names, optimization="all").run(x)
    np.testing.assert_array_equal(got[names[0]], x)
    session = ort.InferenceSession(cnn_model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = np.concatenate([session.run(None, {names[0]: x[i : i + 1]})[0] for i in range(len(x))])
    np.testing.assert_allclose(got[names[1]], expected, rtol=1e-5, atol=1e-6)


def _flatten_model(*, reshape_to=(1, -1), softmax_axis: int | None = None, batch: int = 1) -> onnx.ModelProto:
    """x (batch, 2, 3, 3) -> Relu -> Reshape(reshape_to) [-> Softmax(axis)] -> y."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Reshape", ["r", "shape"], ["f"])]
    last = "f"
    if softmax_axis is not None:
        nodes.append(helper.make_node("Softmax", ["f"], ["s"], axis=softmax_axis))
        last = "s"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    graph = helper.make_graph(
        nodes, "flatten", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(reshape_to, np.int64), "shape")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_reshape_that_spells_the_batch_as_one_keeps_images_apart():
    model = _flatten_model()
    x = random_input((4, 2, 3, 3), seed=7)
    observer = ActivationObserver(model, ["f"])
    assert observer.batch > 1
    np.testing.assert_array_equal(observer.run(x)["f"], x.clip(min=0).reshape(4, -1))


def test_an_op_across_images_keeps_the_model_batch():
    model = _flatten_model(softmax_axis=0)
    observer = ActivationObserver(model, ["s"])
    assert observer.batch == 1
    x = random_input((3, 2, 3, 3), seed=8)
    np.testing.assert_array_equal(observer.run(x)["s"], _direct(model, ["s"], x)["s"])


def test_fixed_batch_other_than_one_is_kept_and_checked():
    model = _flatten_model(reshape_to=(2, -1), batch=2)
    observer = ActivationObserver(model, ["f"])
    assert observer.batch == 2
    assert observer.run(random_input((4, 2, 3, 3), seed=9))["f"].shape == (4, 18)
    with pytest.raises(ObservationError, match="multiple of 2"):
        observer.run(random_input((3, 2, 3, 3), seed=9))


def test_unknown_tensor_and_misfit_input_raise_one_line(cnn_model):
    with pytest.raises(ObservationError, match="'nope' is not in the model"):
        ActivationObserver(cnn_model, ["nope"])
    observer = ActivationObserver(cnn_model, _intermediates(cnn_model)[:1])
    with pytest.raises(ObservationError) as info:
        observer.run(random_input((2, 3, 8, 8)))
    assert "\n" not in str(info.value)


def _tflite_graph() -> bytes:
    """input (1, 4, 4, 2) -> RELU -> MUL by itself -> output: one intermediate tensor."""
    g = Graph()
    x = g.add_tensor("input", (1, 4, 4, 2))
    r = g.add_tensor("relu", (1, 4, 4, 2))
    y = g.add_tensor("output", (1, 4, 4, 2))
    g.inputs.append(x)
    g.outputs.append(y)
    g.ops += [Op("RELU", [x], [r]), Op("MUL", [r, r], [y], {"fused_activation": "NONE"})]
    return write_tflite(g)


def test_litert_observer_keeps_every_tensor():
    x = random_input((3, 4, 4, 2), seed=10)
    observer = LiteRTObserver(_tflite_graph())
    got = list(observer.iterate(x, ["relu", "output"]))
    assert [op["op_name"] for op in observer.ops] == ["RELU", "MUL"]
    for image, values in zip(x, got, strict=True):
        np.testing.assert_array_equal(values["relu"][0], image.clip(min=0))
        np.testing.assert_allclose(values["output"][0], image.clip(min=0) ** 2, rtol=1e-6)
    with pytest.raises(ObservationError, match="not in the model"):
        next(observer.iterate(x, ["nope"]))


def test_litert_observer_on_xnnpack_reads_inputs_and_outputs_only():
    x = random_input((2, 4, 4, 2), seed=11)
    observer = LiteRTObserver(_tflite_graph(), xnnpack=True)
    for image, values in zip(x, observer.iterate(x, ["input", "output"]), strict=True):
        np.testing.assert_array_equal(values["input"][0], image)
        np.testing.assert_allclose(values["output"][0], image.clip(min=0) ** 2, rtol=1e-6)
    with pytest.raises(ObservationError, match="input or output"):
        next(observer.iterate(x, ["relu"]))
