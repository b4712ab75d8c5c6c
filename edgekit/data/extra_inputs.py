"""Values for a model's inputs after the image (a feature vector, a mask, a second view).

The user's own, from ``--extra-inputs FILE.npz`` (one array per input, named after it, rows batch first; read
without pickles), or where they give none, seeded standard-normal float32, the same on every machine. Row ``i``
goes with image ``i``; rows are reused in turn when there are fewer than images.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.errors import DataError

#: seeds of the values the parity check and the BatchNorm init feed further inputs (different draws)
CHECK_SEED = 1
INIT_SEED = 0


def extra_input_values(shapes: Sequence[Sequence[int]], count: int, seed: int = CHECK_SEED) -> list[np.ndarray]:
    """One float32 array per shape in ``shapes`` (batch first), each with ``count`` rows of standard-normal
    values drawn from one generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((count, *(int(d) for d in shape[1:]))).astype(np.float32) for shape in shapes]


def load_extra_values(path: str | Path, extra) -> tuple[np.ndarray, ...]:
    """The user's values for ``extra`` (``ExtraInput``s) from an ``.npz`` file: one float array per input,
    named after it, shaped ``(rows, *shape[1:])`` with the same number of rows for all. Raises ``DataError``
    (one line naming the fix) for a missing or unreadable file, a missing name, a wrong shape, or values that
    are not finite floats."""
    path = Path(path)
    names = ", ".join(e.name for e in extra)
    fix = f"pass an .npz with one float array per further input ({names}), rows first"
    if not extra:
        raise DataError(f"--extra-inputs {path}: this model has no inputs after the image; drop --extra-inputs")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"--extra-inputs {path} is a single array, not an .npz; {fix}")
        with archive:
            found = {name: archive[name] for name in archive.files if name in {e.name for e in extra}}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise DataError(f"cannot read --extra-inputs {path} ({reason}); {fix}") from None
    values, rows = [], set()
    for e in extra:
        if e.name not in found:
            raise DataError(f"--extra-inputs {path} has no array {e.name!r}; {fix}")
        array = found[e.name]
        want = tuple(int(d) for d in e.shape[1:])
        if array.ndim != len(e.shape) or tuple(array.shape[1:]) != want or array.shape[0] < 1:
            raise DataError(f"--extra-inputs {path}: {e.name!r} has shape {tuple(array.shape)}, not (rows, "
                            f"{', '.join(map(str, want))}); {fix}")
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
            raise DataError(f"--extra-inputs {path}: {e.name!r} is not finite floating-point values; {fix}")
        values.append(np.ascontiguousarray(array, dtype=np.float32))
        rows.add(array.shape[0])
    if len(rows) > 1:
        raise DataError(f"--extra-inputs {path}: the arrays have different row counts ({sorted(rows)}); give every "
                        "input the same number of rows (row i of each goes together)")
    return tuple(values)


def extra_inputs_for(handle, count: int, seed: int = CHECK_SEED) -> list[np.ndarray]:
    """``count`` rows for each of ``handle``'s inputs after the image: the user's values (``handle.extra_values``),
    reused in turn where there are fewer, else seeded N(0, 1)."""
    extra = getattr(handle, "extra_inputs", ())
    given = getattr(handle, "extra_values", None)
    if given is None:
        return extra_input_values([e.shape for e in extra], count, seed=seed)
    return [np.ascontiguousarray(v[np.arange(count) % len(v)]) for v in given]


def extra_inputs_by_name(handle, count: int) -> dict[str, np.ndarray] | None:
    """``extra_inputs_for`` keyed by input name, in the model's input order (None for a one-input model): what
    the int8 steps feed beside ``count`` calibration images."""
    extra = getattr(handle, "extra_inputs", ())
    if not extra:
        return None
    return {e.name: v for e, v in zip(extra, extra_inputs_for(handle, count), strict=True)}


def describe_extra_inputs(handle) -> str:
    """What the checks fed the further inputs, for reports (empty for a one-input model)."""
    names = ", ".join(e.name for e in getattr(handle, "extra_inputs", ()))
    if not names:
        return ""
    source = getattr(handle, "extra_source", None)
    return f" + {names} from {source}" if source else f" + seeded N(0, 1) values for {names}"
