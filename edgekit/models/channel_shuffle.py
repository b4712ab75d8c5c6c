"""Channel shuffle, the one operation every ShuffleNet-style block ends with.

``channel_shuffle`` is the only shuffle in edgekit, so the way it is spelled in PyTorch decides the ONNX
pattern the exporter sees. ``shuffle_lowering(name)`` selects that spelling for the code running inside
the ``with`` block (a context variable, so threads and async tasks do not leak the choice into each
other). Both spellings compute the same tensor; only the traced graph differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor

#: The PyTorch spellings ``channel_shuffle`` can trace to, the default first.
SHUFFLE_LOWERINGS: tuple[str, ...] = ("view_transpose", "reshape_permute")

_LOWERING: ContextVar[str] = ContextVar("edgekit_shuffle_lowering", default=SHUFFLE_LOWERINGS[0])


@contextmanager
def shuffle_lowering(name: str) -> Iterator[str]:
    """Make ``channel_shuffle`` use spelling ``name`` inside the ``with`` block.

    ``name`` is one of ``SHUFFLE_LOWERINGS``: ``"view_transpose"`` (torchvision's spelling, the default)
    or ``"reshape_permute"``. Yields the name. Raises ``ValueError`` for any other name.
    """
    if name not in SHUFFLE_LOWERINGS:
        raise ValueError(
            f"unknown channel shuffle lowering {name!r}; valid lowerings: {', '.join(SHUFFLE_LOWERINGS)}"
        )
    token = _LOWERING.set(name)
    try:
        yield name
    finally:
        _LOWERING.reset(token)


def current_shuffle_lowering() -> str:
    """The spelling ``channel_shuffle`` uses in the current context."""
    return _LOWERING.get()


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of NCHW ``x`` across ``groups`` groups (ShuffleNet's channel shuffle).

    Channel ``g * (C // groups) + i`` of the input becomes channel ``i * groups + g`` of the output.
    ``groups`` must divide the channel count (else the reshape raises ``RuntimeError``; no explicit check,
    because a Python branch on traced sizes would put a TracerWarning into every export).
    """
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    if _LOWERING.get() == "reshape_permute":
        x = x.reshape(batchsize, groups, channels_per_group, height, width)
        x = x.permute(0, 2, 1, 3, 4)
        return x.reshape(batchsize, num_channels, height, width)
    # torchvision's exact spelling, kept op for op so an export of it matches one of torchvision's model.
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    x = x.view(batchsize, num_channels, height, width)
    return x
