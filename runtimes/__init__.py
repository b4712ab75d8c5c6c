"""Inference engines behind one interface: PyTorch eager, ONNX Runtime and LiteRT.

This package is the only edgekit code that calls an inference engine. ``open_runtime`` picks the engine
from what it is given; every runtime takes float32 NCHW and returns float32, so the parity check and the
benchmark treat them alike. Engines are imported only when a runtime for them is opened.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError, ModelFileError

from .base import Runtime, TensorSpec, check_model_file, check_threads, one_line

__all__ = ["Runtime", "TensorSpec", "SUPPORTED_SUFFIXES", "open_runtime", "runtime_versions"]

SUPPORTED_SUFFIXES = (".onnx", ".tflite")


def open_runtime(
    model_or_path: Any,
    *,
    threads: int = 1,
    xnnpack: bool = True,
    optimization: str = "all",
    input_shape: tuple[int, ...] | None = None,
    vet: bool = True,
    extra_inputs: Sequence = (),
) -> Runtime:
    """Open the runtime that fits ``model_or_path``.

    In: a ``torch.nn.Module`` (or an object with ``.module`` and ``.input_shape``, such as an
    ``edgekit.models.ModelHandle``) -> ``TorchRuntime``; a path ending in ``.onnx`` -> ``OnnxRuntime``
    (``optimization``: ``"disable"``, ``"basic"``, ``"extended"`` or ``"all"``); a path ending in
    ``.tflite`` -> ``LiteRTRuntime`` (``xnnpack`` keeps or removes the default XNNPACK delegate).
    ``threads`` applies to every engine; ``input_shape`` (NCHW) and ``extra_inputs`` (a handle's inputs after the
    image) only to PyTorch modules. ``vet`` (files
    only) first loads and runs the file once in an isolated child (``vetting.vet_model_file``), so a damaged
    file cannot crash the caller; files edgekit wrote in this process and files vetted before skip it.
    Out: an open ``Runtime``; close it or use it as a context manager.
    Raises: ``ModelFileError`` for an unsupported suffix or a missing, empty or corrupt model file;
    ``EdgekitError`` for invalid options or a missing LiteRT package.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise ModelFileError(
                f"cannot run {path}: unknown model file type {suffix or '(no suffix)'!r}; "
                f"supported are {', '.join(SUPPORTED_SUFFIXES)} files and torch.nn.Module objects"
            )
        check_threads(threads)
        check_model_file(path, "ONNX" if suffix == ".onnx" else "TFLite")
        if vet:
            from .vetting import vet_model_file

            vet_model_file(path, threads=threads, xnnpack=xnnpack, optimization=optimization)
        try:
            if suffix == ".onnx":
                from .onnx_runtime import OnnxRuntime

                return OnnxRuntime(path, threads=threads, optimization=optimization)
            from .litert_runtime import LiteRTRuntime

            return LiteRTRuntime(path, threads=threads, xnnpack=xnnpack)
        except EdgekitError:
            raise
        except Exception as exc:  # an engine's own error while reading a damaged file's details
            engine = "ONNX Runtime" if suffix == ".onnx" else "LiteRT"
            raise ModelFileError(
                f"{engine} cannot open {path.name} ({exc.__class__.__name__}: {one_line(exc)}); the file is likely "
                "damaged: re-export it"
            ) from exc

    from torch import nn

    from .torch_runtime import TorchRuntime

    module = model_or_path
    if not isinstance(module, nn.Module) and isinstance(getattr(module, "module", None), nn.Module):
        input_shape = input_shape or getattr(module, "input_shape", None)
        extra_inputs = extra_inputs or getattr(module, "extra_inputs", ())
        module = module.module
    if isinstance(module, nn.Module):
        return TorchRuntime(module, threads=threads, input_shape=input_shape, extra_inputs=extra_inputs)
    raise ModelFileError(
        f"cannot run a {type(model_or_path).__name__}; pass a torch.nn.Module or a path to a "
        f"{' or '.join(SUPPORTED_SUFFIXES)} file"
    )


def runtime_versions() -> dict[str, str]:
    """Versions of the inference stack, for export and benchmark reports.

    Out: ``{"torch", "onnxruntime", <"ai-edge-litert" or "tflite-runtime">, "numpy"}`` -> version
    string, ``"not installed"`` where a package is missing. Reads package metadata; imports no engine.
    """
    versions = {name: _version(name) for name in ("torch", "onnxruntime")}
    litert = _version("ai-edge-litert")
    if litert == "not installed" and _version("tflite-runtime") != "not installed":
        versions["tflite-runtime"] = _version("tflite-runtime")
    else:
        versions["ai-edge-litert"] = litert
    versions["numpy"] = _version("numpy")
    return versions


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
