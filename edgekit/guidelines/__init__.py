"""The ShuffleNet V2 guideline experiments (G1-G4) rebuilt, exported and timed on any benchmark target,
laid out as the paper's tables with its published ARM and GPU speeds beside the target's.

``run_guidelines("host")`` returns a ``GuidelineReport``; ``edgekit.report.render_guidelines`` prints it.
"""

from edgekit.guidelines.networks import NetworkSpec, all_networks
from edgekit.guidelines.results import (
    DirectionCheck,
    GuidelineCell,
    GuidelineReport,
    GuidelineRow,
    GuidelineTable,
)
from edgekit.guidelines.run import DEFAULT_SPATIAL, benchmark_measure, export_network, run_guidelines, verdict

__all__ = [
    "DEFAULT_SPATIAL",
    "DirectionCheck",
    "GuidelineCell",
    "GuidelineReport",
    "GuidelineRow",
    "GuidelineTable",
    "NetworkSpec",
    "all_networks",
    "benchmark_measure",
    "export_network",
    "run_guidelines",
    "verdict",
]
