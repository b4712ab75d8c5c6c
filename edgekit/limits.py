"""Bounds on what a user may ask for, checked before the work starts (estimate memory first, then allocate).

A typo such as ``--samples 1000000`` or ``--input-shape 1,3,100000,100000`` must end in one line naming the
flag, not in minutes of swapping, an out-of-memory kill or a native crash.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edgekit.errors import DataError

#: More threads than any phone, board or workstation has cores; engines crash creating pools far beyond it.
MAX_THREADS = 256
#: The most images a parity check, per-layer comparison or calibration set may hold at once.
MAX_SAMPLES = 100_000
#: Peak activation memory of a CNN's forward pass as a multiple of its input (ShuffleNetV2 at 224: ~2-4x,
#: a U-Net's widest skip connections: ~30x); generous, since the estimate only has to catch absurd requests.
ACTIVATION_FACTOR = 32
_GIB = 1 << 30


def available_memory_bytes() -> int | None:
    """Memory the machine can still give (MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_input_memory(input_shape: Sequence[int], what: str = "--input-shape") -> None:
    """Raise ``DataError`` when a forward pass at ``input_shape`` (NCHW) would need more memory than is
    available (input float32 bytes x ``ACTIVATION_FACTOR``)."""
    need = math.prod(int(d) for d in input_shape) * 4 * ACTIVATION_FACTOR
    _require(need, f"a model at input shape {','.join(str(int(d)) for d in input_shape)}",
             f"pass a smaller {what}")


def check_samples(samples: int, input_shape: Sequence[int]) -> None:
    """Raise ``DataError`` when ``samples`` is outside 1..MAX_SAMPLES or its inputs (float32, plus the
    uint8 images and one copy in the model's layout) would not fit in available memory."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise DataError(f"--samples must be from 1 to {MAX_SAMPLES:,}, got {samples:,}")
    per_image = math.prod(int(d) for d in input_shape[1:]) if len(input_shape) > 1 else 1
    need = samples * per_image * (4 + 4 + 1)
    _require(need, f"{samples:,} samples of shape {','.join(str(int(d)) for d in input_shape[1:])}",
             "pass fewer --samples")


def _require(need: int, what: str, fix: str) -> None:
    have = available_memory_bytes()
    if have is not None and need > have:
        raise DataError(f"{what} would need about {need / _GIB:,.1f} GiB of memory and this machine has "
                        f"{have / _GIB:,.1f} GiB available; {fix}")
