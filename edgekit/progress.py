"""The progress callback every long-running edgekit function takes: one line of text per step.

A leaf: it imports nothing from edgekit, so every package can name the type without importing another.
"""

from __future__ import annotations

from collections.abc import Callable

#: Called with one human-readable line per step ("calibrating on 100 images"); the CLI prints it to stderr.
Progress = Callable[[str], None]


def quiet(_message: str) -> None:
    """A ``Progress`` that says nothing: what a function uses when its caller passed none."""
