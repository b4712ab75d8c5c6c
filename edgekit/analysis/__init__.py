"""Why a model is fast or slow: per-layer mult-adds and memory access cost (MAC), ShuffleNetV2's guidelines
G1-G4 as findings, and predicted vs measured time shares when an op profile is given.

``analyze("shufflenet_v2_x1_0")`` traces a registered model (or a ``file.py:factory``, or an ``nn.Module``)
in PyTorch; ``analyze("model.onnx")`` / ``analyze("model.tflite")`` reads the exported graph, so data
movement is counted as it was exported. The result is an ``Analysis`` dataclass.
"""

from edgekit.analysis.analyze import analyze, summarize_kinds
from edgekit.analysis.costs import OpNode, conv1x1_mac, g1_lower_bound, layer_cost
from edgekit.analysis.results import (
    Analysis,
    Finding,
    LayerCost,
    OpTypeShare,
    ProfileComparison,
    ShareComparison,
)

__all__ = [
    "Analysis",
    "Finding",
    "LayerCost",
    "OpNode",
    "OpTypeShare",
    "ProfileComparison",
    "ShareComparison",
    "analyze",
    "conv1x1_mac",
    "g1_lower_bound",
    "layer_cost",
    "summarize_kinds",
]
