"""``analyze``: one model or model file to an ``Analysis`` (layers, totals, kind shares, findings)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekit.analysis.costs import OpNode, layer_cost
from edgekit.analysis.findings import G1_EXCESS, all_findings, segment_label, segments
from edgekit.analysis.folded_shuffles import regroup_split_layers
from edgekit.analysis.profile import compare_profile, load_profile, measured_elementwise_share, profile_rows
from edgekit.analysis.results import Analysis, LayerCost, OpTypeShare
from edgekit.errors import DataError, ModelFileError, UserModelError
from edgekit.file_metadata import read_metadata

FILE_SUFFIXES = (".onnx", ".tflite")


def analyze(
    model: Any,
    *,
    input_shape: Sequence[int] | None = None,
    profile: str | Path | Any | None = None,
    g1_excess: float = G1_EXCESS,
) -> Analysis:
    """Analyse ``model``: a registry name, ``file.py:factory`` / ``module:factory``, an ``nn.Module``, or a
    path to an ``.onnx`` / ``.tflite`` file.

    ``input_shape`` (N,C,H,W) overrides a registered model's input and is required for factories and
    modules. ``profile`` is a bench JSON path or a ``BenchReport``/``BenchRun`` with an op profile; it adds
    measured times per layer and predicted-vs-measured shares. ``g1_excess`` is the fraction above the G1
    bound from which a 1x1 convolution is flagged.
    Raises ``ModelFileError`` for unreadable files, ``UnknownModelError``/``UserModelError`` for specs that
    do not resolve, ``DataError`` for a bad shape or a profile without per-op rows.
    """
    notes: list[str] = []
    params: int | None = None
    folded_shuffles = False
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() in FILE_SUFFIXES:
        path = Path(model)
        if path.suffix.lower() == ".onnx":
            from edgekit.analysis.onnx_costs import onnx_nodes

            nodes, inputs, notes = onnx_nodes(path)
            kind = "onnx"
        else:
            from edgekit.analysis.tflite_costs import tflite_nodes

            nodes, inputs, notes = tflite_nodes(path)
            kind = "tflite"
            folded_shuffles = _shuffle_lowering(path) == "folded"
        source = str(path)
    else:
        module, source, shape = _module(model, input_shape)
        from edgekit.analysis.layers import trace_module

        try:
            nodes = trace_module(module, shape)
        except Exception as exc:
            raise UserModelError(f"{source}: the forward pass failed on input {','.join(map(str, shape))} "
                                 f"({exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0]})") from None
        inputs, kind = [list(shape)], "pytorch"
        params = sum(p.numel() for p in module.parameters())
    return build_analysis(nodes, source=source, source_kind=kind, input_shapes=inputs, params=params, notes=notes,
                          profile=profile, g1_excess=g1_excess, folded_shuffles=folded_shuffles)


def _shuffle_lowering(path: Path) -> str | None:
    """The channel-shuffle lowering edgekit's metadata in ``path`` records (None for other files)."""
    try:
        return read_metadata(path).get("shuffle_lowering")
    except ModelFileError:  # damaged metadata: the graph was readable, so analyse it as any file
        return None


def build_analysis(nodes: list[OpNode], *, source: str, source_kind: str, input_shapes: list[list[int]],
                   params: int | None = None, notes: list[str] | None = None, profile: Any = None,
                   g1_excess: float = G1_EXCESS, folded_shuffles: bool = False) -> Analysis:
    """An ``Analysis`` from a front end's ops (see ``analyze``). ``folded_shuffles``: the ops come from a file
    whose channel shuffles edgekit folded into split convolutions; G1 then judges the layers as
    designed (``folded_shuffles.regroup_split_layers``), the costs stay those of the file."""
    layers = [layer_cost(node) for node in nodes]
    _mark_fusable_activations(nodes, layers)
    parts = segments(nodes)
    for indices, _ in parts:
        label = segment_label([layers[i].name for i in indices])
        for i in indices:
            layers[i].block = label
    flops = sum(layer.mult_adds for layer in layers)
    memory = sum(layer.memory_access for layer in layers)
    others: dict[str, int] = defaultdict(int)
    for layer in layers:
        if layer.kind == "other":
            others[layer.op_type] += 1
    analysis = Analysis(
        source=source, source_kind=source_kind, input_shapes=[list(s) for s in input_shapes],
        params=params if params is not None else sum(layer.params for layer in layers), mult_adds=flops,
        memory_access=memory, intensity=flops / memory if memory else None, layers=layers,
        op_kinds=summarize_kinds(layers), other_ops=dict(others), notes=list(notes or []),
    )
    if others:
        analysis.notes.append(f"ops the analysis does not know, counted as other: "
                              f"{', '.join(f'{k} x{v}' for k, v in sorted(others.items()))}")
    if profile is not None:
        rows, summary, where = (load_profile(profile) if isinstance(profile, (str, Path))
                                else profile_rows(profile))
        analysis.profile = compare_profile(analysis, rows, summary, where)
    split = regroup_split_layers(nodes) if folded_shuffles else None
    analysis.findings = all_findings(layers, parts, g1_excess=g1_excess,
                                     measured_elementwise_share=measured_elementwise_share(analysis.profile),
                                     designed_layers=split.layers if split else None)
    if split is not None:
        for finding in analysis.findings:
            finding.layers = split.file_names(finding.layers)
        last_g1 = max(i for i, f in enumerate(analysis.findings) if f.guideline == "G1")
        analysis.findings.insert(last_g1 + 1, split.finding(memory))
    return analysis


_ACTIVATIONS = ("relu", "relu_", "relu6", "clip", "hardtanh", "hardtanh_")


def _mark_fusable_activations(nodes: list[OpNode], layers: list[LayerCost]) -> None:
    """Note the activations that read a convolution's output: runtimes apply them inside the convolution."""
    producer = {key: i for i, node in enumerate(nodes) for key in node.outputs}
    for node, layer in zip(nodes, layers, strict=True):
        if layer.kind != "elementwise" or layer.op_type.lower() not in _ACTIVATIONS or not node.inputs:
            continue
        source = producer.get(node.inputs[0])
        while source is not None and layers[source].kind == "folded":  # BatchNorm folded into the conv
            source = producer.get(nodes[source].inputs[0]) if nodes[source].inputs else None
        if source is not None and layers[source].kind in ("conv1x1", "conv", "group_conv", "depthwise_conv", "fc"):
            layer.note = "fusable: ONNX Runtime and LiteRT apply it inside the convolution before it"


def summarize_kinds(layers: list[LayerCost]) -> list[OpTypeShare]:
    """Count, mult-adds and memory access per op kind with their shares (percent), largest MAC first."""
    total_flops = sum(layer.mult_adds for layer in layers) or 1
    total_mac = sum(layer.memory_access for layer in layers) or 1
    groups: dict[str, list[LayerCost]] = defaultdict(list)
    for layer in layers:
        groups[layer.kind].append(layer)
    shares = [
        OpTypeShare(
            kind=kind, count=len(members), mult_adds=sum(m.mult_adds for m in members),
            memory_access=sum(m.memory_access for m in members),
            mult_adds_pct=100 * sum(m.mult_adds for m in members) / total_flops,
            memory_access_pct=100 * sum(m.memory_access for m in members) / total_mac,
            op_types=sorted({m.op_type for m in members}),
        )
        for kind, members in groups.items()
    ]
    return sorted(shares, key=lambda s: (-s.memory_access, -s.mult_adds, s.kind))


def _module(model: Any, input_shape: Sequence[int] | None):
    from torch import nn

    from edgekit.models import parse_input_shape

    shape = parse_input_shape(input_shape) if input_shape is not None else None
    if isinstance(model, nn.Module):
        if shape is None:
            raise DataError("analysing an nn.Module needs input_shape, e.g. (1, 3, 224, 224)")
        return model.eval(), type(model).__name__, shape
    from edgekit.models.registry import DEFAULT_INPUT_SHAPE, build_architecture, is_registered, model_metadata

    name = str(model)
    if is_registered(name):
        # The architecture is all the costs depend on: no weights to load or calibrate.
        module = build_architecture(name).eval()
        return module, name, shape or tuple(model_metadata(name).get("input_shape", DEFAULT_INPUT_SHAPE))
    from edgekit.models import resolve

    handle = resolve(name, input_shape=shape)
    return handle.module, handle.name, tuple(handle.input_shape)
