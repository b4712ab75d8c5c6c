"""What an analysis found, as plain dataclasses (serialised with ``edgekit.report.to_json``).

Counts follow the ShuffleNetV2 paper (Ma et al., ECCV 2018): ``mult_adds`` is what the paper calls FLOPs
(multiply-adds of convolutions and fully connected layers); ``memory_access`` is its memory access cost
(MAC): the elements an op reads and writes, weights included, bias excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class LayerCost:
    """One op of the analysed graph, in execution order.

    ``op_type`` is the source's own name (``Conv2d``, ``Conv``, ``CONV_2D``); ``kind`` is edgekit's
    (``conv1x1``, ``conv``, ``group_conv``, ``depthwise_conv``, ``fc``, ``elementwise``, ``pool``, ``concat``,
    ``split``, ``slice``, ``transpose``, ``reshape``, ``pad``, ``folded``, ``other``). Shapes are as the
    source lays them out (NCHW for PyTorch/ONNX, NHWC for TFLite). ``intensity`` is mult-adds per element
    accessed (None when the op accesses nothing). ``measured_ms`` comes from an op profile, when given.
    """

    name: str
    op_type: str
    kind: str
    input_shapes: list[list[int]]
    output_shapes: list[list[int]]
    params: int
    mult_adds: int
    memory_access: int
    intensity: float | None
    in_channels: int | None = None
    out_channels: int | None = None
    groups: int | None = None
    kernel: list[int] | None = None
    out_hw: int | None = None  # output height x width, for the paper's per-layer formulas
    block: str | None = None  # the segment of the graph the op belongs to (see findings.G3)
    measured_ms: float | None = None
    note: str | None = None


@dataclass
class OpTypeShare:
    """Totals of one op kind and its share of the whole graph (shares in percent)."""

    kind: str
    count: int
    mult_adds: int
    memory_access: int
    mult_adds_pct: float
    memory_access_pct: float
    op_types: list[str] = field(default_factory=list)  # the source op types folded into this kind


@dataclass
class Finding:
    """One guideline observation, tied to the layers it is about.

    ``guideline`` is ``G1``..``G4``; ``severity`` is ``warn`` (the graph goes against the guideline) or
    ``info`` (a figure worth knowing); ``figures`` holds the numbers the message quotes.
    """

    guideline: str
    severity: str
    message: str
    layers: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)


@dataclass
class ShareComparison:
    """Predicted vs measured share of time for one op family (percent of the profiled total)."""

    family: str
    count: int
    mult_adds_pct: float
    memory_access_pct: float
    measured_ms: float
    measured_pct: float


@dataclass
class ProfileComparison:
    """An op profile matched to the analysis: per-family shares and how many layers got a time."""

    source: str  # the profile's model file and device
    total_ms: float
    families: list[ShareComparison]
    matched_layers: int
    notes: list[str] = field(default_factory=list)


@dataclass
class Analysis:
    """Per-layer costs, totals, op-kind shares and guideline findings of one model or model file.

    ``source_kind`` is ``pytorch``, ``onnx`` or ``tflite``. ``other_ops`` counts ops the analysis does not
    know, by their name (their memory access is still counted from their tensors).
    """

    KIND: ClassVar[str] = "analysis"  # in its JSON with VERSION (report.to_json); edgekit report reads by it
    VERSION: ClassVar[int] = 1

    source: str
    source_kind: str
    input_shapes: list[list[int]]
    params: int
    mult_adds: int
    memory_access: int
    intensity: float | None
    layers: list[LayerCost]
    op_kinds: list[OpTypeShare]
    findings: list[Finding] = field(default_factory=list)
    other_ops: dict[str, int] = field(default_factory=dict)
    profile: ProfileComparison | None = None
    notes: list[str] = field(default_factory=list)
