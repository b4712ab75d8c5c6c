"""Which reference model an exported file's edgekit metadata names, without trusting the file.

A file's metadata is data from whoever made the file. It may only *select among registry names*: it never
chooses code to import (a ``file.py:factory`` or ``package.module:factory`` it names is refused until the
user passes ``--model`` themselves) and never starts a download (``weights_kind: pretrained`` needs the
user's ``--pretrained``). Everything a caller needs to rebuild the reference comes back as plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import DataError, UnknownModelError, WeightsError
from edgekit.input_contract import METADATA_KEY, InputContract, extra_inputs_from_metadata
from edgekit.models import registry
from edgekit.models.user_model import is_factory_spec

#: The largest input a file's metadata may declare; a larger one is damage or an attack, not a model.
MAX_METADATA_DIMENSION = 16384


@dataclass(frozen=True)
class FileReference:
    """The reference to rebuild for an exported file.

    ``spec`` is the user's ``--model`` or a registry name from the file; ``input_shape`` is the user's, else
    the file's (None when neither gives one); ``pretrained`` is only ever the user's flag; ``from_file``
    says whether the model came from the file's metadata (so its recorded weights hash applies).
    """

    spec: str
    input_shape: tuple[int, ...] | None
    pretrained: bool
    from_file: bool
    #: a user factory's normalisation as the file declares it (None for registry models, which carry theirs)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    #: the shapes (as PyTorch takes them) of the inputs after the image: the user's, else the file's
    extra_input_shapes: tuple[tuple[int, ...], ...] = ()


def printable(text: str, limit: int = 120) -> str:
    """``text`` from a file made safe to print in one line: control characters (terminal escapes) dropped,
    whitespace collapsed, long text cut."""
    clean = "".join(ch if ch.isprintable() else " " for ch in str(text))
    clean = " ".join(clean.split())
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def metadata_input_shape(meta: dict[str, str], path: str | Path) -> tuple[int, ...] | None:
    """The NCHW input shape a file's metadata records (None when it records none).

    Raises ``DataError`` for a shape that is not four positive integers up to ``MAX_METADATA_DIMENSION``.
    """
    text = meta.get("reference_input_shape") or meta.get("input_shape")  # the older files' name
    if not text:
        return None
    try:
        shape = tuple(int(d) for d in str(text).split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or not all(1 <= d <= MAX_METADATA_DIMENSION for d in shape):
        raise DataError(
            f"{Path(path).name} records an unusable input shape {printable(text)!r} in its metadata; "
            "pass --input-shape N,C,H,W"
        )
    return shape


def metadata_extra_shapes(meta: dict[str, str], path: str | Path) -> tuple[tuple[int, ...], ...]:
    """The shapes, as PyTorch takes them (4-D NCHW), of the inputs after the image a file's metadata declares.

    Raises ``DataError`` for a record that cannot be read (damage, or not edgekit's).
    """
    try:
        extra = extra_inputs_from_metadata(meta)
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{Path(path).name} records unusable further inputs in its metadata; pass --input-shape once "
                        "per input, the image first") from None
    return tuple((e.shape[0], e.shape[3], e.shape[1], e.shape[2]) if e.layout == "NHWC" else e.shape for e in extra)


def declared_normalization(meta: dict[str, str]) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """The mean/std a file's input contract declares (numbers only), or ``(None, None)``."""
    try:
        contract = InputContract.from_metadata(meta[METADATA_KEY])
    except (KeyError, ValueError, TypeError):
        return None, None
    return contract.mean, contract.std


def reference_for_file(
    path: str | Path,
    meta: dict[str, str],
    *,
    model: str | None = None,
    weights: str | None = None,
    pretrained: bool = False,
    input_shape: tuple[int, ...] | None = None,
    purpose: str = "check",
    extra_input_shapes: tuple[tuple[int, ...], ...] | None = None,
) -> FileReference:
    """Decide which reference model rebuilds ``path`` from the user's flags and the file's metadata.

    The user's ``model`` wins and is used as given. Otherwise the file's ``model`` entry must be a registry
    name. Raises ``DataError`` when neither names a model, ``UnknownModelError`` when the file names a
    Python factory (edgekit never imports code a file names) or an unknown model, and ``WeightsError`` when
    the file was exported with pretrained or file weights the user did not supply. ``extra_input_shapes``: the
    user's shapes for the inputs after the image (None: the file's, unless ``input_shape`` was given).
    """
    name = Path(path).name
    if extra_input_shapes is None:
        extra_input_shapes = metadata_extra_shapes(meta, path) if input_shape is None else ()
    if input_shape is None:
        input_shape = metadata_input_shape(meta, path)
    if model:
        mean = std = None
        if not registry.is_registered(model):
            mean, std = declared_normalization(meta)
        return FileReference(model, input_shape, pretrained, from_file=False, mean=mean, std=std,
                             extra_input_shapes=extra_input_shapes)
    named = meta.get("model")
    if not named:
        raise DataError(f"{name} carries no edgekit metadata naming its model; pass --model NAME (or "
                        f"--model file.py:factory) to {purpose} it")
    if not registry.is_registered(named):
        if is_factory_spec(named) or "/" in named or "\\" in named or named.endswith(".py"):
            raise UnknownModelError(
                f"{name} says it was exported from the Python factory {printable(named)!r}; edgekit never runs "
                f"code a file names: pass --model with that factory yourself (and --weights, --input-shape as at "
                f"export) if you trust it"
            )
        raise UnknownModelError(
            f"{name} names model {printable(named)!r}, which is not in edgekit's registry (`edgekit models`); "
            "pass --model NAME or --model file.py:factory"
        )
    kind = meta.get("weights_kind")
    if kind == "file" and weights is None and not pretrained:
        raise WeightsError(f"{name} was exported with weights from a file; pass the same file with --weights FILE")
    if kind == "pretrained" and weights is None and not pretrained:
        raise WeightsError(
            f"{name} was exported with {named}'s published pretrained weights; pass --pretrained to download "
            "them (edgekit never downloads unasked) or --weights FILE with a local copy"
        )
    return FileReference(named, input_shape, pretrained, from_file=True)
