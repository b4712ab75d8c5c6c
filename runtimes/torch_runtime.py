"""PyTorch eager execution of an ``nn.Module``: the reference every exported model is checked against."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from edgekit.errors import EdgekitError, UserModelError

from .base import Runtime, TensorSpec, check_threads, one_line, to_model_layout


class TorchRuntime(Runtime):
    """Runs an ``nn.Module`` in eval mode under ``torch.inference_mode``.

    ``threads`` is applied with ``torch.set_num_threads`` for the duration of each ``run`` and the
    previous setting restored afterwards, so opening a runtime does not change the process. The module's
    train/eval flag is likewise restored after each run. ``input_shape`` (NCHW, batch included) is
    optional; when given, inputs are checked against it and ``inputs`` describes it. ``extra_inputs`` (objects
    with ``name`` and ``shape``, such as a ``ModelHandle``'s): the ``forward`` arguments after the image; ``run``
    then takes one array per input.

    ``float64=True`` runs a float64 deep copy of the module instead (the caller's module is untouched): the
    float32 inputs are widened exactly, tensors the forward creates without a dtype are float64 too, and the
    outputs come back as float64. It is the exact reference against which the parity check measures how far
    float32 rounding alone takes PyTorch itself. Raises ``UserModelError`` when the module cannot be copied.
    """

    name = "torch"

    def __init__(
        self, module: nn.Module, *, threads: int = 1, input_shape: Sequence[int] | None = None,
        float64: bool = False, extra_inputs: Sequence = (),
    ) -> None:
        if not isinstance(module, nn.Module):
            raise EdgekitError(f"TorchRuntime needs a torch.nn.Module, got {type(module).__name__}")
        self.float64 = float64
        self.module = _float64_copy(module) if float64 else module
        self.threads = check_threads(threads)
        self.version = torch.__version__
        if input_shape is not None:
            shape: tuple[int | None, ...] = (None, *(int(d) for d in tuple(input_shape)[1:]))
            layout = "NCHW" if len(shape) == 4 else None
            self.inputs = [TensorSpec("input", shape, "float32", layout)]
        else:
            self.inputs = [TensorSpec("input", (None, None, None, None), "float32", "NCHW")]
        for extra in extra_inputs:
            shape = (None, *(int(d) for d in tuple(extra.shape)[1:]))
            self.inputs.append(TensorSpec(extra.name, shape, "float32", "NCHW" if len(shape) == 4 else None))
        # Known once the module has run: an eager module does not declare its outputs.
        self.outputs = []

    def _run(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        xs = [to_model_layout(x, spec) if any(d is not None for d in spec.shape) else x
              for x, spec in zip(xs, self.inputs, strict=True)]
        previous_threads = torch.get_num_threads()
        previous_dtype = torch.get_default_dtype()
        was_training = self.module.training
        dtype = torch.float64 if self.float64 else torch.float32
        try:
            torch.set_num_threads(self.threads)
            if self.float64:  # so that tensors the forward makes (torch.zeros, arange(...).float()) are float64 too
                torch.set_default_dtype(torch.float64)
            self.module.eval()
            with torch.inference_mode():
                result = self.module(*(torch.from_numpy(x).to(dtype) for x in xs))
        finally:
            torch.set_default_dtype(previous_dtype)
            self.module.train(was_training)
            torch.set_num_threads(previous_threads)
        outputs = [t.detach().to(dtype).numpy() for t in _flatten(result)]
        if not self.outputs:
            self.outputs = [
                TensorSpec(f"output{i}", (None, *y.shape[1:]), str(y.dtype), "NCHW" if y.ndim == 4 else None)
                for i, y in enumerate(outputs)
            ]
        return outputs

    def _run_error(self, exc: Exception) -> EdgekitError:
        return UserModelError(
            f"the PyTorch model raised {exc.__class__.__name__} ({one_line(exc)}) on input of shape "
            f"{self.inputs[0].shape}; fix the model or pass the --input-shape it takes"
        )

    def _close(self) -> None:
        del self.module


def _float64_copy(module: nn.Module) -> nn.Module:
    try:
        return copy.deepcopy(module).double()
    except Exception as exc:  # a module holding uncopyable state (open files, locks in hooks)
        raise UserModelError(
            f"the PyTorch model cannot be copied to run in float64 ({exc.__class__.__name__}: {one_line(exc)})"
        ) from None


def _flatten(result: object) -> list[torch.Tensor]:
    """The tensors of a module's result, in order: a tensor, or nested tuples/lists/dicts of them."""
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, dict):
        return [t for value in result.values() for t in _flatten(value)]
    if isinstance(result, (tuple, list)):
        return [t for value in result for t in _flatten(value)]
    raise EdgekitError(
        f"model returned {type(result).__name__}; edgekit needs a tensor or a tuple/list/dict of tensors"
    )
