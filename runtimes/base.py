"""What every edgekit runtime looks like: tensor descriptions and the ``Runtime`` base class.

A runtime owns one loaded model in one inference engine. Callers always hand it float32 NCHW and get
float32 back; layout changes and int8 (de)quantisation are the runtime's business, so the parity check
and the benchmark compare engines without knowing how each one stores tensors.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edgekit.errors import DataError, EdgekitError, ModelFileError
from edgekit.input_contract import METADATA_KEY, InputContract
from edgekit.limits import MAX_THREADS

Layout = Literal["NCHW", "NHWC"]


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the engine stores it.

    ``shape`` is in the engine's own layout (``layout``), with ``None`` for a dynamic dimension.
    ``dtype`` is a NumPy dtype name (``"float32"``, ``"int8"``, ...). ``scale`` and ``zero_point``
    are the affine quantisation (``real = scale * (q - zero_point)``) of an integer tensor, else None.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    layout: Layout | None = None
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        """True when the tensor holds integers that stand for reals through ``scale``/``zero_point``."""
        return self.scale is not None


class Runtime(ABC):
    """A loaded model in one inference engine.

    Subclasses set ``name`` (``"torch"``, ``"onnxruntime"`` or ``"litert"``), ``version``, ``inputs``,
    ``outputs`` and ``threads`` and implement ``_run`` and ``_close``. Use as a context manager, or call
    ``close()``, to release the engine.
    """

    name: str
    version: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    threads: int

    _closed = False

    def run(self, x: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run the model on one batch.

        In: ``x``, a float array in NCHW (or the model's own rank for non-image inputs), or for a model
        with several inputs a list of them, one per input in ``inputs`` order (4-D ones NCHW, every one batch
        first); other float dtypes are cast to float32. Out: the model's outputs as float32 arrays in the
        model's output order; 4-D outputs are NCHW (a channels-last model's outputs are transposed back).
        Raises ``DataError`` for integer input, a wrong number of inputs or a shape that does not fit the
        model; ``RuntimeError`` after ``close()``.
        """
        if self._closed:
            raise RuntimeError(f"{self.name} runtime is closed")
        xs = [as_float32(a) for a in x] if isinstance(x, (list, tuple)) else [as_float32(x)]
        if len(xs) != len(self.inputs):
            names = ", ".join(spec.name for spec in self.inputs)
            raise DataError(f"{self.name} got {len(xs)} input arrays but the model takes {len(self.inputs)} "
                            f"({names}); pass one array per input, in that order")
        x = xs[0]
        try:
            return self._run(xs)
        except EdgekitError:
            raise
        except MemoryError:
            raise DataError(f"{self.name} ran out of memory on a batch of shape {x.shape}; pass fewer samples "
                            "or a smaller input shape") from None
        except Exception as exc:  # an engine's own error class: never a traceback for a bad file
            raise self._run_error(exc) from exc

    def _run_error(self, exc: Exception) -> EdgekitError:
        """The one-line error for an engine failure during ``run`` (file runtimes blame the file)."""
        path = getattr(self, "path", None)
        what = Path(path).name if path is not None else "the model"
        return ModelFileError(
            f"{self.name} failed running {what} ({exc.__class__.__name__}: {one_line(exc)}); the file is likely "
            "damaged: re-export it"
        )

    @property
    def precision(self) -> str:
        """The numeric precision the model computes in: ``"fp32"``, ``"fp16"`` or ``"int8"``.

        Read from the weights and ops, not the I/O dtypes, so an int8 model with float inputs (ONNX QDQ,
        TFLite with float I/O) still says ``"int8"``. The base class answers ``"fp32"``.
        """
        return "fp32"

    @property
    def settings(self) -> dict[str, object]:
        """The options this runtime was opened with, for reports (``threads`` and engine-specific ones)."""
        return {"threads": self.threads}

    def close(self) -> None:
        """Release the engine; idempotent."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        shapes = ", ".join(str(spec.shape) for spec in self.inputs)
        return f"<{type(self).__name__} {self.name} {self.version} inputs=[{shapes}] threads={self.threads}>"

    @abstractmethod
    def _run(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        """Run on float32 inputs (one per model input) already checked by ``run``."""

    @abstractmethod
    def _close(self) -> None:
        """Release engine resources."""


def as_float32(x: np.ndarray) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 array; raise ``DataError`` for non-float data."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(
            f"runtime input has dtype {x.dtype}; pass preprocessed float32 NCHW "
            "(edgekit.data.preprocess turns uint8 images into it)"
        )
    return np.ascontiguousarray(x, dtype=np.float32)


def guess_layout(shape: Sequence[int | None], default: Layout) -> Layout | None:
    """The layout of a model input from its shape: None unless 4-D, NHWC when the last dimension looks
    like channels (1, 3 or 4) and dimension 1 does not, NCHW for the reverse, ``default`` when unsure."""
    if len(shape) != 4:
        return None
    channels = (1, 3, 4)
    if shape[3] in channels and shape[1] not in channels:
        return "NHWC"
    if shape[1] in channels and shape[3] not in channels:
        return "NCHW"
    return default


def to_model_layout(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Check NCHW input ``x`` against ``spec`` and return it in the model's layout (contiguous).

    Raises ``DataError`` when the rank or a fixed non-batch dimension does not match.
    """
    expected = spec.shape
    if spec.layout == "NHWC":
        expected = (spec.shape[0], spec.shape[3], spec.shape[1], spec.shape[2])
    if x.ndim != len(expected) or any(
        want is not None and got != want for got, want in zip(x.shape[1:], expected[1:], strict=True)
    ):
        want = "x".join("?" if d is None else str(d) for d in expected)
        raise DataError(
            f"input shape {'x'.join(map(str, x.shape))} does not fit the model's input "
            f"'{spec.name}' ({want}, NCHW); resize the inputs to the model's input shape"
        )
    if spec.layout == "NHWC":
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


def batches(x: np.ndarray, model_batch: int | None) -> list[np.ndarray]:
    """Split ``x`` along dimension 0 into chunks the model accepts.

    A dynamic batch (None) or a matching one takes ``x`` whole; a fixed batch that divides ``len(x)``
    takes it in chunks. Raises ``DataError`` otherwise.
    """
    if model_batch is None or x.shape[0] == model_batch:
        return [x]
    if model_batch > 0 and x.shape[0] % model_batch == 0:
        return [x[i : i + model_batch] for i in range(0, x.shape[0], model_batch)]
    raise DataError(
        f"batch of {x.shape[0]} does not split into the model's fixed batch of {model_batch}; "
        f"pass a multiple of {model_batch}"
    )


def batch_chunks(xs: Sequence[np.ndarray], specs: Sequence[TensorSpec]) -> list[list[np.ndarray]]:
    """``batches`` for every input at once: the chunks each run takes, one array per input. Raises
    ``DataError`` when the inputs do not split into the same number of runs (their batches differ)."""
    split = [batches(x, spec.shape[0] if spec.shape else None) for x, spec in zip(xs, specs, strict=True)]
    if len({len(chunks) for chunks in split}) > 1:
        sizes = ", ".join(f"{spec.name} {x.shape[0]}" for x, spec in zip(xs, specs, strict=True))
        raise DataError(f"the inputs' batches do not match ({sizes}); give every input the same batch")
    return [list(run) for run in zip(*split, strict=True)]


def collect_outputs(results: list[list[np.ndarray]], specs: Sequence[TensorSpec]) -> list[np.ndarray]:
    """Join per-batch engine outputs into what callers get: one float32 NCHW array per output.

    ``results`` holds one list of raw outputs per batch; quantized outputs are dequantized with their
    spec's scale and zero point, and NHWC outputs transposed to NCHW.
    """
    outputs = []
    for i, spec in enumerate(specs):
        y = np.concatenate([r[i] for r in results]) if len(results) > 1 else results[0][i]
        if spec.scale is not None:
            y = (y.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)
        y = np.asarray(y, dtype=np.float32)
        if spec.layout == "NHWC":
            y = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        outputs.append(y)
    return outputs


def check_threads(threads: int) -> int:
    """Return ``threads`` if it is an int from 1 to ``MAX_THREADS``, else raise ``EdgekitError``."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise EdgekitError(f"threads must be an integer from 1 to {MAX_THREADS}, got {threads!r} "
                           f"(this machine has {os.cpu_count()} cores)")
    return threads


def check_model_file(path: str | os.PathLike[str], kind: str) -> Path:
    """Return ``path`` as a Path after checking it names a non-empty file.

    Raises ``ModelFileError`` (one line naming the file and the fix) when it is missing, not a file, or
    empty.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{kind} model file {path} does not exist; check the path or re-export it")
    if not path.is_file():
        raise ModelFileError(f"{kind} model path {path} is not a file; pass the exported model file")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{kind} model file {path} is empty; re-export it")
    return path


def one_line(message: object, limit: int = 200) -> str:
    """Collapse an engine's (possibly multi-line) error message to one short line."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def nchw_input_shape(spec: TensorSpec) -> list[int]:
    """The NCHW shape callers feed ``spec`` (the model's own layout turned back; dynamic dimensions as 1)."""
    shape = [int(d) if d else 1 for d in spec.shape]
    if spec.layout == "NHWC" and len(shape) == 4:
        shape = [shape[0], shape[3], shape[1], shape[2]]
    return shape


def declared_layouts(fields: dict[str, str]) -> dict[str, Layout | None]:
    """The layouts a file's edgekit metadata declares for its inputs after the image, by tensor name (empty
    for a file that declares none, or whose record is damaged: the shapes are then guessed)."""
    from edgekit.input_contract import extra_inputs_from_metadata

    try:
        return {e.name: e.layout for e in extra_inputs_from_metadata(fields)}  # type: ignore[misc]
    except (ValueError, KeyError, TypeError):
        return {}


def file_metadata_or_empty(path) -> dict[str, str]:
    """A model file's edgekit metadata, or an empty dict for a file without readable metadata (the engine
    then says what is wrong with the file itself)."""
    from edgekit.file_metadata import read_metadata

    try:
        return read_metadata(path)
    except EdgekitError:
        return {}


def pixel_normalization(fields: dict[str, str]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mean, std)`` per channel when a file's edgekit metadata says it takes pixels (its input contract's
    kind is ``pixels`` or ``bytes``; older files: ``input_normalization: in-model``), else None. Raises
    ``ModelFileError`` for a contract or mean/std that cannot be read."""
    import json

    try:
        if fields.get(METADATA_KEY):
            contract = InputContract.from_metadata(fields[METADATA_KEY])
            if not contract.takes_pixels:
                return None
            mean, std = contract.mean, contract.std
        elif fields.get("input_normalization") == "in-model":
            mean, std = json.loads(fields["mean"]), json.loads(fields["std"])
        else:
            return None
        mean_array, std_array = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
        if mean_array.ndim != 1 or mean_array.shape != std_array.shape or not np.all(std_array != 0):
            raise ValueError("mean/std")
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"the file's input contract in its edgekit metadata is damaged ({exc}); re-export "
                             "it") from None
    return mean_array, std_array


def pixels_from_normalized(x: np.ndarray, normalization, spec: TensorSpec) -> np.ndarray:
    """Normalised NCHW float input turned into what a pixel-input model takes, in its layout and dtype:
    pixels in [0, 1] (``x * std + mean``), or their integer codes for a quantized input (one multiply-add
    per element, then rounding: pixels land on whole codes, so no value sits on a rounding tie)."""
    mean, std = normalization
    if len(mean) != x.shape[1]:
        raise DataError(f"input has {x.shape[1]} channels but the model's input contract has {len(mean)}; "
                        "pass images with the model's channel count")
    gain, offset = std.astype(np.float64), mean.astype(np.float64)
    if spec.scale is not None:
        gain, offset = gain / spec.scale, offset / spec.scale + spec.zero_point
    shape = (1, -1, 1, 1)
    x = to_model_layout(x * gain.astype(np.float32).reshape(shape) + offset.astype(np.float32).reshape(shape), spec)
    if spec.scale is not None:
        info = np.iinfo(spec.dtype)
        x = np.clip(np.rint(x), info.min, info.max)
    return np.ascontiguousarray(x.astype(spec.dtype))
