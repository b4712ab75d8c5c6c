"""G1-G4 findings: a model built to violate a guideline is flagged; ShuffleNetV2's stride-1 blocks are not."""

import re

import torch
from torch import nn

from edgekit.analysis import analyze
from edgekit.guidelines.networks import g3_networks, g4_networks


def findings(analysis, guideline, severity=None):
    return [f for f in analysis.findings if f.guideline == guideline and (severity is None or f.severity == severity)]


def test_g1_flags_unbalanced_1x1_convs_with_the_bound():
    model = nn.Sequential(nn.Conv2d(8, 96, 1), nn.ReLU(), nn.Conv2d(96, 8, 1))  # 1:12 and 12:1
    analysis = analyze(model, input_shape=(1, 8, 16, 16))
    warned = findings(analysis, "G1", "warn")
    assert sorted(layer for f in warned for layer in f.layers) == ["0", "2"]
    first = warned[0].figures
    assert first["c1"] == 8 and first["c2"] == 96 and first["hw"] == 256
    assert first["bound"] < first["mac"] and first["excess_pct"] > 50
    assert "2*sqrt(hwB) + B/hw" in warned[0].message


def test_g1_leaves_balanced_convs_alone():
    model = nn.Sequential(nn.Conv2d(32, 32, 1), nn.Conv2d(32, 32, 1))
    analysis = analyze(model, input_shape=(1, 32, 16, 16))
    assert not findings(analysis, "G1", "warn")
    assert findings(analysis, "G1", "info")


def test_shufflenet_v2_stride_1_blocks_are_not_flagged():
    analysis = analyze("shufflenet_v2_x1_0")
    stride_1 = re.compile(r"^stage\d\.[1-9]")  # stage2.0 etc. are the stride-2 units
    flagged = [layer for f in analysis.findings if f.severity == "warn" for layer in f.layers]
    assert not [name for name in flagged if stride_1.match(name)]
    assert not findings(analysis, "G1", "warn") and not findings(analysis, "G2", "warn")
    assert any(layer.name.startswith("stage3.1.branch2") and layer.kind == "conv1x1" for layer in analysis.layers)


def test_g2_reports_the_cost_of_groups():
    model = nn.Sequential(nn.Conv2d(64, 64, 1, groups=8), nn.Conv2d(64, 64, 1, groups=2))
    analysis = analyze(model, input_shape=(1, 64, 8, 8))
    by_groups = {int(f.figures["groups"]): f for f in findings(analysis, "G2")}
    assert by_groups[8].severity == "warn" and by_groups[8].layers == ["0"]
    assert by_groups[2].severity == "info"
    assert by_groups[8].figures["extra_pct"] > by_groups[2].figures["extra_pct"] > 0


def test_g3_flags_four_parallel_fragments_not_series():
    parallel = next(s for s in g3_networks([64]) if s.row == "4-fragment-parallel")
    series = next(s for s in g3_networks([64]) if s.row == "4-fragment-series")
    flagged = analyze(parallel.build(), input_shape=(1, 64, 4, 4))
    plain = analyze(series.build(), input_shape=(1, series.in_channels, 4, 4))
    warn = findings(flagged, "G3", "warn")
    assert len(warn) == 10 and all(f.figures["branches"] == 4 for f in warn)
    assert not findings(plain, "G3", "warn")
    assert findings(plain, "G3", "info")[0].figures["max_branches"] == 1


def test_g4_counts_element_wise_share_and_fusable_activations():
    with_both = next(s for s in g4_networks([32]) if s.row == "ReLU yes, shortcut yes")
    none = next(s for s in g4_networks([32]) if s.row == "ReLU no, shortcut no")
    a = findings(analyze(with_both.build(), input_shape=(1, 32, 8, 8)), "G4")[0]
    b = findings(analyze(none.build(), input_shape=(1, 32, 8, 8)), "G4")[0]
    assert a.figures["elementwise_mac_pct"] > 30 and b.figures["elementwise_mac_pct"] == 0
    # ReLUs after a conv are fused by runtimes; the adds and the ReLU after each add are not
    assert 0 < a.figures["unfused_mac_pct"] < a.figures["elementwise_mac_pct"]
    assert a.severity == "warn"


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x) + x)


def test_findings_name_layers_that_exist():
    analysis = analyze(Residual(), input_shape=(1, 8, 8, 8))
    names = {layer.name for layer in analysis.layers}
    for f in analysis.findings:
        assert set(f.layers) <= names
