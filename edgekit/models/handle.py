"""``resolve``: a model spec (registry name or user factory) to the ``ModelHandle`` edgekit works with."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from edgekit.data.extra_inputs import load_extra_values
from edgekit.errors import DataError, UnknownModelError, UserModelError, WeightsError
from edgekit.limits import check_input_memory
from edgekit.models import registry
from edgekit.models.user_model import (
    batchnorm_never_measured,
    factory_name,
    forward_inputs,
    is_factory_spec,
    load_factory,
)
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


@dataclass(frozen=True)
class ExtraInput:
    """A model input after the image: a float32 tensor fed as it is (no pixels, no normalisation).

    ``name`` is the ``forward`` argument it feeds (also its name in exported files); ``shape`` is its full
    shape as PyTorch takes it, batch first."""

    name: str
    shape: tuple[int, ...]


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
    #: a user model's inputs after the image, in ``forward``'s order (``--input-shape`` once per input)
    extra_inputs: tuple[ExtraInput, ...] = ()
    #: the user's values for them (``--extra-inputs FILE.npz``, one array per input, rows first) and that file
    extra_values: tuple[Any, ...] | None = None
    extra_source: str | None = None

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        """Every input's shape, the NCHW image first."""
        return [tuple(self.input_shape), *(e.shape for e in self.extra_inputs)]


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


#: the most dimensions a further input may have (TFLite's kernels take up to 6)
MAX_TENSOR_RANK = 6


def _shape_values(text: str | Sequence[int], example: str) -> tuple[int, ...]:
    """``"1,3,224,224"`` (commas, ``x`` or spaces) or a sequence of ints -> the ints; ``DataError`` otherwise."""
    parts = [p for p in re.split(r"[,x\s]+", text.strip().strip("()[]")) if p] if isinstance(text, str) else text
    try:
        return tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise DataError(f"input shape {text!r} is not a list of integers; {example}") from None


def parse_input_shape(text: str | Sequence[int]) -> tuple[int, int, int, int]:
    """``"1,3,224,224"`` (commas, ``x`` or spaces) or a sequence of 4 ints -> ``(N, C, H, W)``.

    Raises ``DataError`` unless there are exactly four positive integers.
    """
    example = "pass it as N,C,H,W, e.g. --input-shape 1,3,224,224"
    values = _shape_values(text, example)
    if len(values) != 4:
        raise DataError(f"input shape {text!r} has {len(values)} dimensions, not 4; {example}")
    if min(values) < 1:
        raise DataError(f"input shape {text!r} has a non-positive dimension; {example}")
    return values  # type: ignore[return-value]


def parse_tensor_shape(text: str | Sequence[int], batch: int) -> tuple[int, ...]:
    """A further input's shape (after the image's): 1 to ``MAX_TENSOR_RANK`` positive integers whose first is the
    batch, the image's ``batch``. Raises ``DataError`` naming the fix."""
    example = f"pass it batch first, e.g. --input-shape {batch},16"
    values = _shape_values(text, example)
    if not 1 <= len(values) <= MAX_TENSOR_RANK or min(values) < 1:
        raise DataError(f"input shape {text!r} needs 1 to {MAX_TENSOR_RANK} positive dimensions; {example}")
    if values[0] != batch:
        raise DataError(f"input shape {text!r} starts with batch {values[0]} but the image's batch is {batch}; every "
                        f"input's first dimension is the batch: {example}")
    return values


def resolve(
    spec: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = False,
    input_shape: str | Sequence[int] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    extra_input_shapes: Sequence[str | Sequence[int]] = (),
    extra_data: str | os.PathLike[str] | None = None,
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

    ``extra_input_shapes`` (user factories only): the shapes of ``forward``'s arguments after the image, one
    per argument in order; each becomes an ``ExtraInput`` named after its argument. ``extra_data``: an ``.npz``
    of values for them (``data.extra_inputs.load_extra_values``), read and checked here, before any work.
    """
    shape = parse_input_shape(input_shape) if input_shape is not None else None
    if shape is not None:
        check_input_memory(shape)
    if extra_input_shapes and shape is None:
        raise DataError("give the image's --input-shape N,C,H,W first, then one per further input")
    extra_shapes = [parse_tensor_shape(s, shape[0]) for s in extra_input_shapes] if shape is not None else []
    for extra_shape in extra_shapes:
        check_input_memory(extra_shape)
    if (mean is None) != (std is None):
        raise DataError("pass --mean and --std together (or --no-normalization)")

    if extra_data is not None and not extra_shapes:
        raise DataError("--extra-inputs gives values for a model's inputs after the image; pass their --input-shape "
                        "too, or drop --extra-inputs")
    if registry.is_registered(spec):
        if extra_shapes:
            raise DataError(f"{spec} takes one image input; pass --input-shape once")
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
        module = load_factory(spec, inputs=1 + len(extra_shapes))
        names = forward_inputs(module, 1 + len(extra_shapes))[1:]
        extra = tuple(ExtraInput(n, s) for n, s in zip(names, extra_shapes, strict=True))
        extra_values = load_extra_values(extra_data, extra) if extra_data is not None else None
        source = "factory"
        if weights is not None:
            state = load_state_dict_file(weights)
            apply_state_dict(module, state, source=str(weights), arch=factory_name(spec))
            source = f"file:{os.path.abspath(os.fspath(weights))}"
        elif batchnorm_never_measured(module):
            # Untrained BatchNorms are identities in eval mode and let activations drift to ~1e3, which no
            # parity check can judge; registry models get the same seeded, BN-calibrated init.
            deterministic_init(module, shape, mean, std, calibration_images=_calibration_images(shape),
                               extra_input_shapes=extra_shapes)
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
            extra_inputs=extra,
            extra_values=extra_values,
            extra_source=None if extra_data is None else os.path.basename(os.fspath(extra_data)),
        )

    if spec.endswith(".py") or os.path.sep in spec:
        raise UnknownModelError(
            f"{spec!r} names a file but no factory; pass path/to/file.py:factory (the function that "
            "returns your nn.Module)"
        )
    # Unknown name: let the registry's error list the known ones.
    registry.model_metadata(spec)
    raise AssertionError("unreachable")  # pragma: no cover
