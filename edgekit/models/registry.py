"""The model registry: one way to name and build every built-in model, from the CLI and from Python.

A model family registers each builder with ``@register_model(name, **metadata)``; the metadata (family,
task, width, pretrained URL, reference accuracy, preprocessing, parameter and multiply-add counts) travels
with the builder. ``create`` builds a model by name with its weights; ``list_models`` describes them all
from that metadata alone, building nothing (the counts are literals that ``tests/models/test_zoo_registry.py``
recomputes from the architectures, so they cannot go stale).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

import torch
from torch import nn

from edgekit.errors import UnknownModelError, WeightsError
from edgekit.model_catalog import CatalogEntry

DEFAULT_INPUT_SHAPE = (1, 3, 224, 224)


@dataclass(frozen=True)
class ModelInfo(CatalogEntry):
    """What ``list_models`` says about one registered model: the listing's fields (``CatalogEntry``) and
    ``metadata``, everything the builder was registered with.

    ``params`` counts parameters; ``macs`` counts the multiply-adds of Conv2d, ConvTranspose2d and Linear
    layers for one image of ``input_shape`` (the figure papers call FLOPs). ``pretrained_url`` is ``None``
    when no published weights exist. ``task`` is ``classification``, ``segmentation`` or ``detection``;
    ``pure_cnn`` says whether the network is convolutions, pooling and pointwise ops only (no attention,
    no LayerNorm over permuted channels), i.e. whether an NHWC export needs no layout transpose (``None``:
    not declared).
    """

    KIND: ClassVar[str] = "model"  # in its JSON with VERSION (report.to_json); edgekit report reads by it
    VERSION: ClassVar[int] = 1

    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class _Entry:
    name: str
    builder: Callable[..., nn.Module]
    meta: dict[str, Any]


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, **meta: Any) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(**kwargs) -> nn.Module`` under ``name`` with ``meta``.

    The builder returns the architecture only; ``create`` gives it weights. Useful ``meta`` keys:
    ``family``, ``width``, ``description``, ``pretrained_url``, ``input_shape``, ``mean``, ``std``,
    ``labels`` (class names in output order), ``task`` (default ``classification``), ``pure_cnn``,
    ``params`` and ``macs`` (literal counts, so listing builds nothing; without them ``model_info`` builds
    the model once to count), ``default_weights`` (a state-dict file shipped with the package, used when
    no weights are asked for), ``calibration_data`` (default int8 calibration source).
    Raises ``ValueError`` if ``name`` is taken.
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = _Entry(name, builder, dict(meta))
        return builder

    return decorate


def model_names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered model."""
    return name in _REGISTRY


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(model_names())} "
            "(or pass path/to/file.py:factory for your own)"
        ) from None


def model_metadata(name: str) -> dict[str, Any]:
    """A copy of the metadata ``name`` was registered with. Raises ``UnknownModelError``."""
    return dict(_entry(name).meta)


def build_architecture(name: str, **kwargs: Any) -> nn.Module:
    """Build ``name``'s architecture with PyTorch's default init, leaving the global RNG untouched.

    Raises ``UnknownModelError`` for an unregistered name.
    """
    entry = _entry(name)
    # Default layer init draws from the global generator; forking keeps callers' seeded runs reproducible.
    with torch.random.fork_rng(devices=[]):
        return entry.builder(**kwargs)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of ``model``'s Conv2d, ConvTranspose2d and Linear layers on one input of ``input_shape``.

    Conv2d: output elements x in_channels/groups x kernel area; ConvTranspose2d: input elements x
    out_channels/groups x kernel area; Linear: output elements x in_features. Matrix products outside
    Linear layers (attention) are not counted. Runs one forward pass of zeros on the model's device
    (``meta`` works too).
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def transposed_conv_hook(module: nn.ConvTranspose2d, inputs: Any, _output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += inputs[0].numel() * (module.out_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.ConvTranspose2d):
            handles.append(m.register_forward_hook(transposed_conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)


@cache
def count_params_and_macs(name: str) -> tuple[int, int]:
    """Parameters and multiply-adds of ``name`` counted by building it (a forward pass of one image).

    ``model_info`` reads the registered literals instead; this is the measurement they must equal.
    """
    entry = _entry(name)
    # A real CPU forward of one image: for these small networks it is faster than the meta device, whose
    # first use imports PyTorch's symbolic-shape machinery (about a second).
    model = build_architecture(name)
    params = sum(p.numel() for p in model.parameters())
    input_shape = tuple(entry.meta.get("input_shape", DEFAULT_INPUT_SHAPE))
    return params, count_macs(model, input_shape)


def model_info(name: str) -> ModelInfo:
    """``ModelInfo`` for one registered model, from its registered metadata. Raises ``UnknownModelError``.

    Builds nothing when the registration carries ``params`` and ``macs`` (every built-in model does).
    """
    entry = _entry(name)
    meta = entry.meta
    if "params" in meta and "macs" in meta:
        params, macs = int(meta["params"]), int(meta["macs"])
    else:
        params, macs = count_params_and_macs(name)
    return ModelInfo(
        name=name,
        family=str(meta.get("family", "")),
        width=meta.get("width"),
        params=params,
        macs=macs,
        input_shape=tuple(meta.get("input_shape", DEFAULT_INPUT_SHAPE)),
        description=str(meta.get("description", "")),
        pretrained_url=meta.get("pretrained_url"),
        task=str(meta.get("task", "classification")),
        pure_cnn=meta.get("pure_cnn"),
        metadata=dict(meta),
    )


def list_models() -> list[ModelInfo]:
    """``ModelInfo`` for every registered model, sorted by name."""
    return [model_info(name) for name in model_names()]


def create_with_source(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[nn.Module, str]:
    """Like ``create`` but also returns where the weights came from.

    The source is ``"file:<absolute path>"``, ``"pretrained:<url>"`` or
    ``"init:seed=0,bn-calibrated"`` (edgekit's deterministic initialisation, see ``weights``).
    """
    # Imported here: weights.py uses edgekit.data, which the registry does not need to list models.
    from edgekit.models import weights as w

    entry = _entry(name)
    if weights is not None and pretrained:
        raise WeightsError(f"{name}: pass either --weights FILE or --pretrained, not both")
    model = build_architecture(name)
    if weights is not None:
        state = w.load_state_dict_file(weights)
        w.apply_state_dict(model, state, source=str(weights), arch=name)
        source = f"file:{os.path.abspath(os.fspath(weights))}"
    elif pretrained:
        url = entry.meta.get("pretrained_url")
        if not url:
            raise WeightsError(
                f"{name} has no published pretrained weights; pass --weights FILE with a state dict "
                "you trained, or drop --pretrained for edgekit's deterministic init"
            )
        path = w.download_pretrained(url, progress=progress)
        w.apply_state_dict(model, w.load_state_dict_file(path), source=str(path), arch=name)
        source = f"pretrained:{url}"
    elif entry.meta.get("default_weights"):
        # Models trained for edgekit ship their weights inside the package (see models/digits.py).
        path = entry.meta["default_weights"]
        w.apply_state_dict(model, w.load_state_dict_file(path), source=str(path), arch=name)
        source = f"bundled:{os.path.basename(path)}"
    else:
        w.deterministic_init(
            model,
            input_shape=tuple(entry.meta.get("input_shape", DEFAULT_INPUT_SHAPE)),
            mean=entry.meta.get("mean", (0.485, 0.456, 0.406)),
            std=entry.meta.get("std", (0.229, 0.224, 0.225)),
        )
        source = w.INIT_SOURCE
    return model.eval(), source


def create(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = False,
    *,
    progress: Callable[[int, int | None], None] | None = None,
) -> nn.Module:
    """Build registered model ``name`` in eval mode.

    Weights come from ``weights`` (a state-dict file), or from the published URL when ``pretrained`` is
    true (downloaded once into ``~/.cache/edgekit/weights``; ``progress(done_bytes, total_bytes)`` is
    called while downloading), or else from edgekit's deterministic init: seeded weights with BatchNorm
    statistics calibrated on bundled photos, so outputs are realistic and identical run to run.

    Raises ``UnknownModelError`` (unknown name), ``WeightsError`` (unusable or mismatched file, both or
    no weights available) and ``DownloadError`` (download failed).
    """
    return create_with_source(name, weights, pretrained, progress)[0]
