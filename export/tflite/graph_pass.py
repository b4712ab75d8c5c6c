"""What a pass over edgekit's TFLite graph (``ir.Graph``) returns, beside the graph it rewrote in place."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GraphPassResult:
    """The outcome of one pass over an ``ir.Graph``: its ``name``, how many rewrites it made (``changed``)
    and one human-readable line per rewrite. The IR passes edit the graph they are given, as the lowering
    and the quantizer do, so the result carries no graph."""

    name: str
    changed: int = 0
    details: list[str] = field(default_factory=list)
