"""Users' own models: ``path/to/file.py:factory`` or ``package.module:factory`` specs.

The factory is imported with ``importlib`` and called in-process with no arguments; nothing runs through
a shell. Every failure becomes one ``UserModelError`` line naming the spec and the cause.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from edgekit.errors import UserModelError

_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def is_factory_spec(spec: str) -> bool:
    """Whether ``spec`` has the ``file.py:factory`` / ``package.module:factory`` shape."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not _IDENTIFIER.match(attr):
        return False
    return target.endswith(".py") or bool(_MODULE_PATH.match(target))


def split_spec(spec: str) -> tuple[str, str]:
    """``"a/b.py:make"`` -> ``("a/b.py", "make")``. Raises ``UserModelError`` for another shape."""
    if not is_factory_spec(spec):
        raise UserModelError(
            f"{spec!r} is not a model factory spec; pass path/to/file.py:factory or package.module:factory"
        )
    target, _, attr = spec.rpartition(":")
    return target, attr


def factory_name(spec: str) -> str:
    """The model name a factory spec gets: the factory's name (``"nets.py:make_net"`` -> ``"make_net"``)."""
    return split_spec(spec)[1]


def _import_file(spec: str, file: str) -> ModuleType:
    path = Path(file).expanduser()
    if not path.is_file():
        raise UserModelError(f"{spec}: file {file} does not exist; pass an existing path/to/file.py:factory")
    path = path.resolve()
    # A unique module name per file, so two files called model.py do not overwrite each other.
    name = f"edgekit_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UserModelError(f"{spec}: cannot import {file} as Python; pass a .py file")
    module = importlib.util.module_from_spec(module_spec)
    # The file's folder goes on sys.path so it can import its sibling modules, as `python file.py` would.
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserModelError(f"{spec}: importing {file} raised {_one_line(exc)}") from None
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    return module


def _import_module(spec: str, module_path: str) -> ModuleType:
    try:
        return importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        raise UserModelError(
            f"{spec}: cannot import {module_path} ({_one_line(exc)}); "
            "install it or pass path/to/file.py:factory"
        ) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserModelError(f"{spec}: importing {module_path} raised {_one_line(exc)}") from None


def import_factory(spec: str) -> Callable[[], object]:
    """Import the callable named by ``spec`` without calling it.

    Raises ``UserModelError`` when the spec is malformed, the file/module cannot be imported, the
    attribute is missing, or it is not callable.
    """
    target, attr = split_spec(spec)
    module = _import_file(spec, target) if target.endswith(".py") else _import_module(spec, target)
    if not hasattr(module, attr):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        hint = f" (callables there: {', '.join(public[:10])})" if public else ""
        raise UserModelError(f"{spec}: {target} has no attribute {attr!r}{hint}; pass an existing factory")
    factory = getattr(module, attr)
    if not callable(factory):
        raise UserModelError(f"{spec}: {attr} is a {type(factory).__name__}, not a callable factory")
    return factory


def load_factory(spec: str, seed: int = 0, inputs: int = 1) -> nn.Module:
    """Import the factory named by ``spec``, call it with no arguments, and return the model it builds.

    The call runs with the torch RNG seeded with ``seed`` inside a fork of the RNG state, so a factory
    that relies on PyTorch's default random init builds the same weights every run, and the caller's RNG
    state is untouched. ``inputs`` is how many tensors the caller will pass ``forward`` (one
    ``--input-shape`` each). Raises ``UserModelError`` naming the spec and the cause when the import fails,
    the attribute is missing, the factory raises, it returns something other than an ``nn.Module``, or its
    ``forward`` needs more inputs than ``inputs`` or cannot take that many.
    """
    factory = import_factory(spec)
    target, attr = split_spec(spec)
    folder = str(Path(target).expanduser().resolve().parent) if target.endswith(".py") else None
    added = folder is not None and folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # lazy imports inside the factory still find the file's siblings
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserModelError(f"{spec}: {attr}() raised {_one_line(exc)}") from None
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    if not isinstance(model, nn.Module):
        raise UserModelError(
            f"{spec}: {attr}() returned a {type(model).__name__}, not a torch.nn.Module; "
            "make the factory return the model"
        )
    needed = required_inputs(model)
    if len(needed) > inputs:
        raise UserModelError(
            f"{spec}: the model's forward takes {len(needed)} inputs ({', '.join(needed)}) but {inputs} input "
            f"shape{'s were' if inputs > 1 else ' was'} given; pass --input-shape once per input, in forward's order, "
            "the NCHW image first (e.g. --input-shape 1,3,224,224 --input-shape 1,16)"
        )
    accepted = _positional_inputs(model)
    if accepted is not None and inputs > len(accepted):
        raise UserModelError(
            f"{spec}: {inputs} input shapes were given but the model's forward takes {len(accepted)} "
            f"({', '.join(accepted)}); pass --input-shape once per input"
        )
    return model


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _forward_parameters(module: nn.Module) -> list[inspect.Parameter] | None:
    """``module.forward``'s parameters, or None when its signature cannot be read."""
    try:
        return list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return None


def _positional_inputs(module: nn.Module) -> list[str] | None:
    """The names of every positional argument of ``module.forward`` (None when it takes ``*args`` or its
    signature cannot be read: any count may fit)."""
    parameters = _forward_parameters(module)
    if parameters is None or any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in _POSITIONAL]


def forward_inputs(module: nn.Module, count: int) -> list[str]:
    """Names for ``count`` inputs of ``module``: ``"input"`` for the image, then ``forward``'s own argument
    names (``input_<i>`` where it has none, or a name is taken)."""
    names = ["input"]
    declared = _positional_inputs(module) or []
    for i in range(1, count):
        name = declared[i] if i < len(declared) else f"input_{i}"
        names.append(name if name not in names and name != "logits" else f"input_{i}")
    return names


def required_inputs(module: nn.Module) -> list[str]:
    """The names of the arguments ``module.forward`` cannot run without: positional parameters with no
    default (``*args`` and keyword-only ones aside); empty when the signature cannot be read."""
    parameters = _forward_parameters(module) or []
    return [p.name for p in parameters if p.kind in _POSITIONAL and p.default is inspect.Parameter.empty]


def batchnorm_never_measured(module: nn.Module) -> bool:
    """Whether ``module`` has BatchNorm layers and none of them has ever measured statistics.

    True when every BatchNorm that tracks running statistics still holds what its constructor set
    (``running_mean`` 0, ``running_var`` 1, ``num_batches_tracked`` 0). Such a model computes with
    identity normalisations in eval mode, so its activations drift by orders of magnitude through the
    layers (an EfficientNet-style net reached logits of ~1e3). Weights that were trained, or loaded from a
    trained checkpoint, always carry measured statistics, so a factory that loads its own weights is never
    taken for an untrained one. False for a model without BatchNorm.
    """
    batchnorms = [m for m in module.modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not batchnorms:
        return False
    for bn in batchnorms:
        tracked = bn.num_batches_tracked
        if tracked is not None and int(tracked) != 0:
            return False
        if bn.running_mean is None or bn.running_var is None:
            return False
        if bool(torch.any(bn.running_mean != 0)) or bool(torch.any(bn.running_var != 1)):
            return False
    return True
