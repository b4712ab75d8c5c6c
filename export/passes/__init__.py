"""Graph passes over exported ONNX models, one small named pass per rewrite.

Each pass is ``fn(model) -> PassResult`` and never modifies its input. ``apply_shuffle_passes`` runs the
channel-shuffle passes for one of the ``SHUFFLE_LOWERINGS``:

- ``"reshape"``: every shuffle in the canonical Reshape/Transpose/Reshape spelling, chunks as Split;
- ``"fused"``: as ``"reshape"``, but a shuffle followed by a channel split becomes
  Reshape/Transpose/Split/Reshape, so the shuffled tensor is never materialised and then copied again;
- ``"concat"``: a shuffle of a g-way channel Concat (every ShuffleNetV2 block) becomes one interleaving
  Concat with no Transpose; other shuffles are lowered as in ``"fused"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import onnx

from edgekit.errors import ExportError

from .canonicalize_channel_shuffle import canonicalize_channel_shuffle
from .fold_shuffle_into_concat import fold_shuffle_into_concat
from .fuse_shuffle_split import fuse_shuffle_split
from .recognize_shuffle import ShuffleMatch, find_channel_shuffles, shuffle_permutation
from .result import PassResult
from .slices_to_split import slices_to_split

__all__ = [
    "SHUFFLE_LOWERINGS",
    "PassResult",
    "ShuffleMatch",
    "UnknownShuffleLoweringError",
    "apply_shuffle_passes",
    "canonicalize_channel_shuffle",
    "describe_shuffle_passes",
    "find_channel_shuffles",
    "fold_shuffle_into_concat",
    "fuse_shuffle_split",
    "shuffle_permutation",
    "slices_to_split",
]

SHUFFLE_LOWERINGS = ("reshape", "fused", "concat")

Pass = Callable[[onnx.ModelProto], PassResult]

_PIPELINES: dict[str, tuple[Pass, ...]] = {
    "reshape": (canonicalize_channel_shuffle, slices_to_split),
    "fused": (canonicalize_channel_shuffle, fuse_shuffle_split, slices_to_split),
    "concat": (canonicalize_channel_shuffle, fold_shuffle_into_concat, fuse_shuffle_split, slices_to_split),
}


class UnknownShuffleLoweringError(ExportError, ValueError):
    """A shuffle lowering name that is not one of ``SHUFFLE_LOWERINGS``."""


def apply_shuffle_passes(
    model: onnx.ModelProto, lowering: str = "fused"
) -> tuple[onnx.ModelProto, list[PassResult], list[ShuffleMatch]]:
    """Lower every channel shuffle in ``model`` as ``lowering`` says.

    Returns the new model (the input is not modified), the PassResult of each pass in the order run, and
    the shuffles found in the input model. Raises UnknownShuffleLoweringError (a ValueError and an
    ExportError) for a lowering not in SHUFFLE_LOWERINGS, and ExportError if the result fails
    ``onnx.checker.check_model(full_check=True)``, which would be a bug in a pass."""
    if lowering not in _PIPELINES:
        raise UnknownShuffleLoweringError(
            f"unknown shuffle lowering {lowering!r}; choose one of {', '.join(SHUFFLE_LOWERINGS)}"
        )
    matches = find_channel_shuffles(model)
    results = []
    for run_pass in _PIPELINES[lowering]:
        result = run_pass(model)
        results.append(result)
        model = result.model
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"shuffle lowering {lowering!r} produced an invalid ONNX graph ({first_line}); "
            "export with another --shuffle-lowering and report this bug"
        ) from exc
    return model, results, matches


def describe_shuffle_passes(
    matches: Sequence[ShuffleMatch], results: Sequence[PassResult], lowering: str
) -> str:
    """One line for a report, e.g. ``found 3 channel shuffles (3x view/transpose/view ...); lowered as
    fused: canonicalize_channel_shuffle 0, fuse_shuffle_split 3, slices_to_split 1``."""
    spellings: dict[str, int] = {}
    for match in matches:
        spellings[match.spelling] = spellings.get(match.spelling, 0) + 1
    found = ", ".join(f"{count}x {spelling}" for spelling, count in spellings.items())
    noun = "shuffle" if len(matches) == 1 else "shuffles"
    line = f"found {len(matches)} channel {noun}" + (f" ({found})" if found else "")
    done = ", ".join(f"{r.name} {r.changed}" for r in results)
    return f"{line}; lowered as {lowering}: {done}"
