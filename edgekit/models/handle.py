"""``resolve``: a model spec (registry name or user factory) to the ``ModelHandle`` edgekit works with."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from edgekit.errors import DataError, UnknownModelError, UserModelError, WeightsError
from edgekit.limits import check_input_memory
from edgekit.models import registry
from edgekit.models.user_model import batchnorm_never_measured, factory_name, is_factory_spec, load_factory
from edgekit.models.weights import (
    CALIBRATION_IMAGES,
    INIT_SOURCE,
    apply_state_dict,
    deterministic_init,
    load_state_dict_file,
    state_dict_sha256,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# For one-channel user models: the mean of ImageNet's per-channel values, the usual grayscale convention.
GRAYSCALE_MEAN = (0.449,)
GRAYSCALE_STD = (0.226,)


@dataclass
class ModelHandle:
    """A resolved model and what is needed to feed it and to report on it.

    ``module`` is in eval mode. ``input_shape`` is NCHW. ``weights_source`` is ``"file:<path>"``,
    ``"pretrained:<url>"``, ``"init:seed=0,bn-calibrated"`` (a registry model's deterministic init, also given
    to a user factory's model whose BatchNorms never measured statistics) or ``"factory"`` (whatever a user
    factory returned). ``weights_sha256`` is ``state_dict_sha256(module)``. ``mean``/``std`` are per-channel
    normalisation values for inputs in [0, 1]. ``family`` is the registry family, or ``"user"``.
    """

    name: str
    module: nn.Module
    input_shape: tuple[int, int, int, int]
    weights_source: str
    weights_sha256: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    family: str
    #: where mean/std come from: "model" (the registry's), "given" (--mean/--std) or "assumed" (ImageNet's)
    normalization: str = "model"
    #: the registry model's own int8 calibration source (a ``calibration_set`` spec such as ``digits``), if any
    calibration_data: str | None = None


def _normalization(mean, std, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std (one value is repeated for every channel); raises DataError for a count that does
    not fit ``channels`` or a std that is not positive."""
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) == 1:
        mean = mean * channels
    if len(std) == 1:
        std = std * channels
    if len(mean) != channels or len(std) != channels:
        raise DataError(f"--mean/--std need 1 or {channels} values for a {channels}-channel input, got "
                        f"{len(mean)} and {len(std)}")
    if min(std) <= 0:
        raise DataError(f"--std values must be positive (they divide the pixels), got {std}")
    return mean, std


def _calibration_images(shape: Sequence[int]) -> int:
    """How many photos calibrate a user model's BatchNorms: ``CALIBRATION_IMAGES`` at 224x224 and fewer for
    larger inputs (as many pixels per channel, 2 at least), so a 640x640 detector's float64 pass takes 4 images
    instead of 32 (6.5 GB for each 64-channel activation)."""
    pixels = int(shape[2]) * int(shape[3])
    return max(2, min(CALIBRATION_IMAGES, round(CALIBRATION_IMAGES * 224 * 224 / pixels)))


def parse_input_shape(text: str | Sequence[int]) -> tuple[int, int, int, int]:
    """``"1,3,224,224"`` (commas, ``x`` or spaces) or a sequence of 4 ints -> ``(N, C, H, W)``.

    Raises ``DataError`` unless there are exactly four positive integers.
    """
    example = "pass it as N,C,H,W, e.g. --input-shape 1,3,224,224"
    if isinstance(text, str):
        parts = [p for p in re.split(r"[,x\s]+", text.strip().strip("()[]")) if p]
        try:
            values = tuple(int(p) for p in parts)
        except ValueError:
            raise DataError(f"input shape {text!r} is not a list of integers; {example}") from None
    else:
        try:
            values = tuple(int(v) for v in text)
        except (TypeError, ValueError):
            raise DataError(f"input shape {text!r} is not a list of integers; {example}") from None
    if len(values) != 4:
        raise DataError(f"input shape {text!r} has {len(values)} dimensions, not 4; {example}")
    if min(values) < 1:
        raise DataError(f"input shape {text!r} has a non-positive dimension; {example}")
    return values  # type: ignore[return-value]


def resolve(
    spec: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = False,
    input_shape: str | Sequence[int] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ModelHandle:
    """Resolve a registry name, ``path/to/file.py:factory`` or ``package.module:factory`` to a handle.

    Registry models get their weights as ``create`` gives them and their registered input shape unless
    ``input_shape`` overrides it (its channel count must match). User factories need ``input_shape``;
    their name is the factory's name, their mean/std ImageNet's (a one-channel input uses the grayscale
    convention), and ``weights`` (a state-dict file) is applied if given. Without ``weights``, a factory's
    model whose BatchNorm layers never measured statistics (``batchnorm_never_measured``: untrained) gets
    ``deterministic_init`` at its input shape and mean/std, as registry models do; any other keeps what the
    factory built (its own init, or weights it loaded itself). ``progress`` reports download
    bytes for ``pretrained``.

    Raises ``UnknownModelError``, ``UserModelError``, ``WeightsError``, ``DownloadError`` or
    ``DataError`` (bad or missing input shape), each with a one-line message.
    """
    shape = parse_input_shape(input_shape) if input_shape is not None else None
    if shape is not None:
        check_input_memory(shape)
    if (mean is None) != (std is None):
        raise DataError("pass --mean and --std together (or --no-normalization)")

    if registry.is_registered(spec):
        if mean is not None:
            raise DataError(f"{spec} carries its own mean and std; --mean/--std are for your own models")
        meta = registry.model_metadata(spec)
        module, source = registry.create_with_source(spec, weights, pretrained, progress)
        default_shape = tuple(meta.get("input_shape", registry.DEFAULT_INPUT_SHAPE))
        if shape is None:
            shape = parse_input_shape(default_shape)
        elif shape[1] != default_shape[1]:
            raise DataError(
                f"{spec} takes {default_shape[1]} input channels, but input shape {shape} has {shape[1]}; "
                f"pass --input-shape {','.join(str(v) for v in (shape[0], default_shape[1], *shape[2:]))}"
            )
        return ModelHandle(
            name=spec,
            module=module,
            input_shape=shape,
            weights_source=source,
            weights_sha256=state_dict_sha256(module),
            mean=tuple(meta.get("mean", IMAGENET_MEAN)),
            std=tuple(meta.get("std", IMAGENET_STD)),
            family=str(meta.get("family", "")),
            calibration_data=meta.get("calibration_data"),
        )

    if is_factory_spec(spec):
        if pretrained:
            raise WeightsError(f"--pretrained is for built-in models only; pass --weights FILE for {spec}")
        if shape is None:
            raise UserModelError(f"{spec}: a user model needs an input shape; pass --input-shape 1,3,224,224")
        normalization = "given"
        if mean is None:
            mean, std = (GRAYSCALE_MEAN, GRAYSCALE_STD) if shape[1] == 1 else (IMAGENET_MEAN, IMAGENET_STD)
            normalization = "assumed"
        mean, std = _normalization(mean, std, shape[1])
        module = load_factory(spec)
        source = "factory"
        if weights is not None:
            state = load_state_dict_file(weights)
            apply_state_dict(module, state, source=str(weights), arch=factory_name(spec))
            source = f"file:{os.path.abspath(os.fspath(weights))}"
        elif batchnorm_never_measured(module):
            # Untrained BatchNorms are identities in eval mode and let activations drift to ~1e3, which no
            # parity check can judge; registry models get the same seeded, BN-calibrated init.
            deterministic_init(module, shape, mean, std, calibration_images=_calibration_images(shape))
            source = INIT_SOURCE
        module.eval()
        return ModelHandle(
            name=factory_name(spec),
            module=module,
            input_shape=shape,
            weights_source=source,
            weights_sha256=state_dict_sha256(module),
            mean=mean,
            std=std,
            family="user",
            normalization=normalization,
        )

    if spec.endswith(".py") or os.path.sep in spec:
        raise UnknownModelError(
            f"{spec!r} names a file but no factory; pass path/to/file.py:factory (the function that "
            "returns your nn.Module)"
        )
    # Unknown name: let the registry's error list the known ones.
    registry.model_metadata(spec)
    raise AssertionError("unreachable")  # pragma: no cover
