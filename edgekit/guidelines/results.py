"""What ``edgekit guidelines`` measured, as plain dataclasses (serialised with ``edgekit.report.to_json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class GuidelineCell:
    """One network (a row at one width): its size, its file and the target's speed.

    ``status`` is ``ok``, ``failed`` (export or run failed; ``error`` says why) or ``partial``.
    ``images_per_s`` is 1000 / ``latency_ms`` at batch 1.
    """

    column: str
    config: str
    mult_adds: int
    memory_access: int
    params: int
    file: str | None = None
    latency_ms: float | None = None
    images_per_s: float | None = None
    status: str = "ok"
    error: str | None = None


@dataclass
class GuidelineRow:
    """One row of a guideline table with the paper's published speeds beside the target's."""

    label: str
    cells: list[GuidelineCell]
    paper_arm: list[float]
    paper_gpu: list[float]
    paper_arm_config: str | None = None  # the paper's channels for the ARM x1 column (G1/G2)
    paper_gpu_config: str | None = None


@dataclass
class DirectionCheck:
    """At one width: speed of the configuration the paper finds slower over the faster one (< 1 means the
    faster one is faster), on the target and in the paper's ARM and GPU columns."""

    column: str
    faster: str
    slower: str
    target_ratio: float | None
    paper_arm_ratio: float
    paper_gpu_ratio: float
    holds: bool | None  # None: not measured, or within the tolerance of equal speed


@dataclass
class GuidelineTable:
    """One of the paper's Tables 1-4, rebuilt and measured on a target."""

    guideline: str
    title: str
    row_header: str
    columns: list[str]
    paper_arm_columns: list[str]
    paper_gpu_columns: list[str]
    rows: list[GuidelineRow]
    direction: str  # the paper's finding, in words
    checks: list[DirectionCheck] = field(default_factory=list)
    # "reproduced", "partly reproduced", "not reproduced", "no clear difference", "no data"
    verdict: str = "no data"


@dataclass
class GuidelineReport:
    """Every table of one ``edgekit guidelines`` run and how it was measured."""

    KIND: ClassVar[str] = "guidelines"  # in its JSON with VERSION (report.to_json); edgekit report reads by it
    VERSION: ClassVar[int] = 1

    target: str
    device: Any | None  # DeviceFacts of the target
    spatial: int
    blocks: int
    threads: int
    accelerator: str | None
    rounds: int
    tables: list[GuidelineTable]
    notes: list[str] = field(default_factory=list)
