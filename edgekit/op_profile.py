"""Per-op profile rows and their per-op-type totals: what ``edgekit bench --op-profile`` measures.

A leaf: the benchmark parsers build these rows and the report sums them for a ``bench.json`` that carries the
rows only, and neither package imports the other for it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass
class OpProfileRow:
    """One row of a per-op profile (run order): the op, its node, and its average time."""

    index: int
    op_type: str
    name: str
    avg_ms: float
    percent: float | None = None


@dataclass
class OpTypeRow:
    """One row of a per-op-type summary: how many ops of a type ran and their summed average time."""

    op_type: str
    count: int
    avg_ms: float
    percent: float | None = None


def summarize_op_types(rows: list[OpProfileRow]) -> list[OpTypeRow]:
    """Per-op-type count and summed average time of run-order rows, slowest type first."""
    count: dict[str, int] = defaultdict(int)
    time_ms: dict[str, float] = defaultdict(float)
    for row in rows:
        count[row.op_type] += 1
        time_ms[row.op_type] += row.avg_ms
    total = sum(time_ms.values()) or 1.0
    return sorted(
        (OpTypeRow(t, count[t], time_ms[t], 100.0 * time_ms[t] / total) for t in count),
        key=lambda r: (-r.avg_ms, r.op_type),
    )
