"""Values for a model's inputs after the image (a feature vector, a mask, a second view): edgekit has no data
for them, so its checks feed seeded standard-normal float32, one row per image, the same on every machine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: seeds of the values the parity check and the BatchNorm init feed further inputs (different draws)
CHECK_SEED = 1
INIT_SEED = 0


def extra_input_values(shapes: Sequence[Sequence[int]], count: int, seed: int = CHECK_SEED) -> list[np.ndarray]:
    """One float32 array per shape in ``shapes`` (batch first), each with ``count`` rows of standard-normal
    values drawn from one generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((count, *(int(d) for d in shape[1:]))).astype(np.float32) for shape in shapes]


def describe_extra_inputs(names: Sequence[str]) -> str:
    """What the checks fed the further inputs, for reports (empty for a one-input model)."""
    return f" + seeded N(0, 1) values for {', '.join(names)}" if names else ""
