"""Probe mode: a model run with its intermediate tensors kept, the one source of every activation statistic.

Post-training quantization measures tensors inside the graph: channel ranges for cross-layer equalization,
input second moments for GPTQ, channel means for bias correction, ranges for calibration, and the
per-layer error report compares every quantized tensor with its float twin. ``ActivationObserver`` runs an
ONNX graph with the named tensors as extra outputs (several images per run where the graph's batch allows
it); ``LiteRTObserver`` runs a ``.tflite`` model on LiteRT's builtin kernels with every tensor preserved.
Both hand back raw values one batch at a time, so a caller can reduce several statistics in one pass over
the images and never holds more than one batch of activations.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError

from .base import check_threads, one_line

#: Images per ONNX Runtime run at most, and the memory the extra outputs of one run may take: batching
#: amortises each run's fixed cost and lets callers reduce with larger matrix products.
MAX_BATCH = 16
BATCH_MEMORY = 256 * 2**20

_OPTIMIZATIONS = ("disable", "basic", "extended", "all")
_BATCH = "batch"


class ObservationError(EdgekitError):
    """The engine could not run the model on the given inputs; ``reason`` is its one-line message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ActivationObserver:
    """An ONNX Runtime CPU session of ``model`` whose outputs are the tensors ``names``.

    In: ``model`` (an ``onnx.ModelProto``, not modified, or its serialized bytes) with one input, or with
    further inputs whose values ``extra`` gives (``{input name: array}``, one row per image ``iterate`` is
    given, in order);
    ``names``: tensors to observe (node outputs, graph outputs or the graph input); ``optimization``:
    ``"disable"`` (every named tensor computed exactly as the graph says, a QDQ graph simulated in float)
    up to ``"all"``; ``threads``: intra-op threads (None: ONNX Runtime's default, one per core).

    A graph with a batch of 1 whose every tensor carries the batch in its first dimension is run with a
    dynamic batch (``batch`` images per run, at most ``MAX_BATCH`` and ``BATCH_MEMORY`` of outputs); images
    never mix, so each image's values are those of a run on it alone. Other graphs run their own batch.
    Raises ``ObservationError`` when ONNX Runtime cannot load the probe or a name is not in the graph.
    """

    def __init__(
        self,
        model: Any,
        names: Sequence[str],
        *,
        threads: int | None = None,
        optimization: str = "disable",
        max_batch: int = MAX_BATCH,
        extra: dict[str, np.ndarray] | None = None,
    ) -> None:
        import onnx

        if optimization not in _OPTIMIZATIONS:
            raise EdgekitError(f"unknown ONNX Runtime optimization level {optimization!r}; use one of "
                               f"{', '.join(_OPTIMIZATIONS)}")
        if threads is not None:
            check_threads(threads)
        probe = onnx.ModelProto()
        if isinstance(model, bytes):
            probe.ParseFromString(model)
        else:
            probe.CopyFrom(model)
        self.names = list(dict.fromkeys(names))
        inputs = _data_inputs(probe)
        self.extra = dict(extra or {})
        unfed = [i.name for i in inputs[1:] if i.name not in self.extra]
        if not inputs or unfed:
            raise ObservationError(f"the model has {len(inputs)} inputs and no values were given for "
                                   f"{', '.join(unfed) or 'the first'}")
        self.input_name = inputs[0].name
        known = {o for n in probe.graph.node for o in n.output} | {i.name for i in inputs}
        missing = [n for n in self.names if n not in known]
        if missing:
            raise ObservationError(f"tensor {missing[0]!r} is not in the model")
        fixed = _fixed_batch(inputs[0])
        per_image = None
        if fixed == 1 and max_batch > 1 and len(inputs) == 1:  # several inputs run at their own batch
            batched = _with_dynamic_batch(probe, self.names)
            if batched is not None:
                probe, per_image = batched
                fixed = None
        if fixed is None:
            fitting = BATCH_MEMORY // per_image if per_image else max_batch
            self.batch = int(max(1, min(max_batch, fitting)))
        else:
            self.batch = fixed
        self.fixed_batch = fixed
        _add_outputs(probe, self.names)
        self._session = _session(probe.SerializeToString(), threads, optimization)

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The observed tensors for the batch ``x`` (shaped like the model input, float cast to float32, an
        integer input as it is; any number of images when the batch is dynamic, else a multiple of the fixed
        batch), joined along axis 0."""
        parts = list(self.iterate(x))
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in self.names}

    def iterate(self, images: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
        """The observed tensors of ``images``, ``batch`` images per dict, in order. Raises
        ``ObservationError`` for an image count that does not split into a fixed batch or an engine error."""
        images = np.asarray(images)
        step = self.batch
        if self.fixed_batch is not None and len(images) % self.fixed_batch:
            raise ObservationError(f"the model input has a fixed batch of {self.fixed_batch} but {len(images)} "
                                   f"images were given; pass a multiple of {self.fixed_batch}")
        if any(len(v) != len(images) for v in self.extra.values()):
            raise ObservationError(f"{len(images)} images but {[len(v) for v in self.extra.values()]} rows of "
                                   "values for the further inputs; give one row per image")
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            chunk = np.ascontiguousarray(chunk, dtype=np.float32 if chunk.dtype.kind == "f" else chunk.dtype)
            feeds = {name: np.ascontiguousarray(v[start : start + step], dtype=np.float32)
                     for name, v in self.extra.items()}
            try:
                values = self._session.run(self.names, {self.input_name: chunk, **feeds})
            except Exception as exc:  # onnxruntime raises its own pybind exception classes
                raise ObservationError(_ort_reason(exc)) from None
            yield dict(zip(self.names, values, strict=True))

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> ActivationObserver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def first_rows(extra: dict[str, np.ndarray] | None, count: int) -> dict[str, np.ndarray] | None:
    """The further inputs' values for the first ``count`` images (a step that runs fewer images than it got)."""
    return None if extra is None else {name: values[:count] for name, values in extra.items()}


def observe(model: Any, names: Sequence[str], images: np.ndarray, **options) -> Iterator[dict[str, np.ndarray]]:
    """``ActivationObserver(model, names, **options).iterate(images)``: the named tensors of ``images``,
    one dict per run (each value shaped ``(images in the run, ...)``)."""
    observer = ActivationObserver(model, names, **options)
    try:
        yield from observer.iterate(images)
    finally:
        observer.close()


class LiteRTObserver:
    """A LiteRT interpreter over a ``.tflite`` model (bytes or a path).

    By default every op runs on the builtin kernels (no XNNPACK) with all tensors preserved after each run,
    so every intermediate tensor can be read. With ``xnnpack=True`` LiteRT delegates to XNNPACK (three times
    faster on ResNet-18, the same values to about 1e-5 relative) and only the model's inputs and outputs
    can be read: the caller makes the tensors it observes outputs of the model it passes.

    ``tensors`` maps each tensor's name to its LiteRT details (index, dtype, shape, quantization); ``ops``
    lists the ops in execution order (``op_name``, ``inputs``, ``outputs`` as tensor indices); ``input`` is
    the details of the (first) input. ``extra``: values of the further inputs by name, in the model's layout,
    one row per image ``iterate`` is given. Raises ``ObservationError`` when LiteRT cannot load the model.
    """

    def __init__(self, model: bytes | str | os.PathLike[str], *, threads: int = 1, xnnpack: bool = False,
                 extra: dict[str, np.ndarray] | None = None) -> None:
        from .litert_runtime import load_interpreter_module

        check_threads(threads)
        interpreter_cls, resolver, _, _ = load_interpreter_module()
        source = {"model_content": model} if isinstance(model, bytes) else {"model_path": os.fspath(model)}
        engine = ({"experimental_op_resolver_type": resolver.AUTO} if xnnpack else
                  {"experimental_op_resolver_type": resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                   "experimental_preserve_all_tensors": True})
        try:
            self._interpreter = interpreter_cls(**source, num_threads=threads, **engine)
            self._interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with multi-line messages
            raise ObservationError(f"LiteRT cannot load the model ({one_line(exc)})") from None
        details = self._interpreter.get_tensor_details()
        self.tensors = {d["name"]: d for d in details}
        self.by_index = {d["index"]: d for d in details}
        inputs = self._interpreter.get_input_details()
        self.input = inputs[0]
        self._inputs = len(inputs)
        self._extra = [(d["index"], np.asarray(extra[d["name"]], dtype=d["dtype"])) for d in inputs[1:]
                       if extra and d["name"] in extra]
        self._readable = None
        if xnnpack:
            edges = [*self._interpreter.get_input_details(), *self._interpreter.get_output_details()]
            self._readable = {d["name"] for d in edges}

    @property
    def ops(self) -> list[dict]:
        """The ops in execution order (LiteRT's only call that lists them)."""
        return self._interpreter._get_ops_details()

    def run(self, x: np.ndarray) -> None:
        """Run one input batch, already in the model's layout and input dtype."""
        try:
            self._interpreter.set_tensor(self.input["index"], x)
            self._interpreter.invoke()
        except Exception as exc:
            raise ObservationError(one_line(exc)) from None

    def value(self, index: int) -> np.ndarray:
        """Tensor ``index`` of the last run (a copy)."""
        return self._interpreter.get_tensor(index)

    def iterate(self, images: np.ndarray, names: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        """For each image of ``images`` (the model's layout, batch axis first), run it alone and yield
        the named tensors. Raises ``ObservationError`` for a name that is not in the model."""
        missing = [n for n in names if n not in (self.tensors if self._readable is None else self._readable)]
        if missing:
            where = "in the model" if self._readable is None else "an input or output of the model (XNNPACK)"
            raise ObservationError(f"tensor {missing[0]!r} is not {where}")
        if len(self._extra) != self._inputs - 1:
            raise ObservationError(f"the model has {self._inputs} inputs and values were given for "
                                   f"{len(self._extra)} after the first")
        indices = [self.tensors[n]["index"] for n in names]
        for row, image in enumerate(images):
            for index, values in self._extra:
                self._interpreter.set_tensor(index, values[row : row + 1])
            self.run(image[None])
            yield {name: self.value(i) for name, i in zip(names, indices, strict=True)}


def _data_inputs(model) -> list:
    initializers = {i.name for i in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def _fixed_batch(value_info) -> int | None:
    dims = value_info.type.tensor_type.shape.dim
    if not dims or not dims[0].HasField("dim_value") or dims[0].dim_value < 1:
        return None
    return int(dims[0].dim_value)


def _add_outputs(model, names: Sequence[str]) -> None:
    import onnx

    present = {o.name for o in model.graph.output}
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input]}
    for name in names:
        if name not in present:
            elem = types.get(name) or onnx.TensorProto.FLOAT
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))


#: Attributes that name axes: an op naming axis 0 may reach across images.
_AXIS_ATTRIBUTES = ("axis", "axes")


def _with_dynamic_batch(model, names: Sequence[str]):
    """``(copy of model with a dynamic batch, bytes of the named tensors per image)``, or None where the
    batch cannot be proven to stay in the first dimension of every tensor.

    Reshape targets that spell the batch as 1 become 0 (copy the input's dimension); then shape inference
    must give every tensor the symbolic batch as its first dimension, and no op may name axis 0 (a softmax
    or reduction over images keeps the shape but mixes them).
    """
    import onnx
    from onnx import numpy_helper

    batched = onnx.ModelProto()
    batched.CopyFrom(model)
    graph = batched.graph
    initializers = {t.name: t for t in graph.initializer}
    taken = set(initializers) | {o for n in graph.node for o in n.output}
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            return None
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        shape = initializers.get(node.input[1])
        if shape is None or any(a.name == "allowzero" and a.i for a in node.attribute):
            return None
        target = numpy_helper.to_array(shape)
        if target.ndim == 1 and len(target) and target[0] == 1:
            target = target.copy()
            target[0] = 0
            name = next(f"{shape.name}__batched{i}" for i in range(len(taken) + 1)
                        if f"{shape.name}__batched{i}" not in taken)
            taken.add(name)
            graph.initializer.append(numpy_helper.from_array(target, name))
            node.input[1] = name
    _data_inputs(batched)[0].type.tensor_type.shape.dim[0].dim_param = _BATCH
    del graph.value_info[:]
    for output in graph.output:
        output.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(batched, strict_mode=True)
    except Exception:  # a graph shape inference cannot follow: keep its own batch
        return None
    values = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}

    def first_dim_is_batch(name: str) -> bool:
        value = values.get(name)
        dims = value.type.tensor_type.shape.dim if value is not None else []
        return bool(dims) and dims[0].dim_param == _BATCH

    # Only what depends on the images carries a batch (weights and shape arithmetic do not).
    dynamic = {_data_inputs(batched)[0].name}
    for node in graph.node:
        if not any(i in dynamic for i in node.input):
            continue
        dynamic.update(node.output)
        if not all(first_dim_is_batch(o) for o in node.output if o):
            return None
        rank = len(values[node.input[0]].type.tensor_type.shape.dim) if node.input and node.input[0] in values else 0
        for attr in node.attribute:
            axes = [attr.i] if attr.type == onnx.AttributeProto.INT else list(attr.ints)
            if attr.name in _AXIS_ATTRIBUTES and any(a == 0 or a == -rank for a in axes):
                return None
    per_image = 0
    for name in names:
        dims = values[name].type.tensor_type.shape.dim
        size = 1
        for d in dims[1:]:
            size *= d.dim_value if d.HasField("dim_value") else 1
        per_image += 4 * size
    return batched, per_image


def _session(content: bytes, threads: int | None, optimization: str):
    import onnxruntime as ort

    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = levels[optimization]
    options.log_severity_level = 3  # errors only: library code does not print warnings
    # Callers reduce each batch in NumPy between runs: idle ONNX Runtime threads that spin for work would
    # take a core from NumPy's BLAS.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ObservationError(f"ONNX Runtime cannot load the probe ({_ort_reason(exc)})") from None


def _ort_reason(exc: Exception) -> str:
    text = str(exc)
    if "failed:" in text:
        text = text.rsplit("failed:", 1)[1]
    return one_line(text) or type(exc).__name__
