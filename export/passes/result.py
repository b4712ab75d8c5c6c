"""What a graph pass returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx


@dataclass
class PassResult:
    """The outcome of one pass: its ``name``, the rewritten ``model`` (a new object; the input is never
    modified), how many rewrites it made (``changed``) and one human-readable line per rewrite."""

    name: str
    model: onnx.ModelProto
    changed: int = 0
    details: list[str] = field(default_factory=list)
