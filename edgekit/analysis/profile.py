"""An analysis against an op profile: predicted share (of mult-adds, of memory access) vs measured share of
time per op family, and a measured time per layer where the profile names the same ops.

Profiles come from ``edgekit bench --op-profile`` (``bench.json``: a ``BenchReport``), as dataclasses or as
the JSON's dicts; each row needs ``op_type``, ``name`` and ``avg_ms``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from edgekit.analysis.costs import FAMILY_OF_KIND, profile_family
from edgekit.analysis.results import Analysis, ProfileComparison, ShareComparison
from edgekit.errors import DataError


def _get(obj: Any, key: str, default=None):
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def load_profile(path: str | Path) -> tuple[list[Any], list[Any], str]:
    """The op rows, per-op-type rows and a description of the first profiled run in a bench JSON file.

    Raises ``DataError`` when the file is unreadable or holds no profiled run.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read op profile {path}: {exc}; "
                        "pass the bench.json of `edgekit bench --op-profile`") from None
    return profile_rows(data, str(path))


def profile_rows(report: Any, origin: str = "profile") -> tuple[list[Any], list[Any], str]:
    """The op rows, per-op-type rows and a description of the first profiled run of a ``BenchReport``
    (or a single ``BenchRun``). Raises ``DataError`` when no run has a profile."""
    runs = _get(report, "runs") if _get(report, "runs") is not None else [report]
    for run in runs or []:
        rows, summary = _get(run, "op_profile") or [], _get(run, "op_type_summary") or []
        if rows or summary:
            device, config = _get(run, "device") or {}, _get(run, "config") or {}
            where = (f"{Path(str(_get(run, 'model_file', '?'))).name} on {_get(device, 'target', '?')}, "
                     f"{_get(config, 'accelerator', '?')}, {_get(config, 'threads', '?')} thread(s)")
            return list(rows), list(summary), where
    raise DataError(f"{origin} holds no per-op profile; run `edgekit bench MODEL --op-profile` on a .onnx model "
                    "(LiteRT's Python API has no op profiler on the host)")


def compare_profile(analysis: Analysis, rows: list[Any], summary: list[Any], source: str) -> ProfileComparison:
    """Fill ``measured_ms`` of the layers the profile names and compare shares per op family.

    The analysis is updated in place (``layers[*].measured_ms``) and the comparison returned. When the
    profiler cannot tell depthwise from dense convolutions (ONNX Runtime), both count as ``conv``.
    """
    notes: list[str] = []
    measured: dict[str, float] = defaultdict(float)
    if rows:
        for row in rows:
            measured[profile_family(str(_get(row, "op_type", "")))] += float(_get(row, "avg_ms", 0.0) or 0.0)
    else:
        for row in summary:
            measured[profile_family(str(_get(row, "op_type", "")))] += float(_get(row, "avg_ms", 0.0) or 0.0)
    split_depthwise = "depthwise_conv" in measured

    def family(kind: str) -> str:
        name = FAMILY_OF_KIND.get(kind, "other")
        return "conv" if name == "depthwise_conv" and not split_depthwise else name

    if not split_depthwise and any(layer.kind == "depthwise_conv" for layer in analysis.layers):
        notes.append("the profiler does not tell depthwise from dense convolutions: both count as conv")
    counts: dict[str, int] = defaultdict(int)
    flops: dict[str, int] = defaultdict(int)
    mac: dict[str, int] = defaultdict(int)
    for layer in analysis.layers:
        if layer.kind == "folded":
            continue
        counts[family(layer.kind)] += 1
        flops[family(layer.kind)] += layer.mult_adds
        mac[family(layer.kind)] += layer.memory_access
    total_ms = sum(measured.values())
    total_flops, total_mac = sum(flops.values()) or 1, sum(mac.values()) or 1
    families = [
        ShareComparison(
            family=name, count=counts.get(name, 0), mult_adds_pct=100 * flops.get(name, 0) / total_flops,
            memory_access_pct=100 * mac.get(name, 0) / total_mac, measured_ms=measured.get(name, 0.0),
            measured_pct=100 * measured.get(name, 0.0) / total_ms if total_ms else 0.0,
        )
        for name in sorted(set(counts) | set(measured), key=lambda n: -measured.get(n, 0.0))
    ]
    if measured.get("other"):
        others = sorted({str(_get(r, "op_type")) for r in rows or summary
                         if profile_family(str(_get(r, "op_type", ""))) == "other"})
        notes.append(f"profiled op types counted as other: {', '.join(others)}")
    matched = _match_layers(analysis, rows)
    if rows and not matched:
        notes.append("no profiled op name matches a layer name (profile a file and analyse the same file to "
                     "get per-layer times)")
    return ProfileComparison(source=source, total_ms=total_ms, families=families, matched_layers=matched,
                             notes=notes)


def _match_layers(analysis: Analysis, rows: list[Any]) -> int:
    times: dict[str, float] = defaultdict(float)
    for row in rows:
        times[str(_get(row, "name", ""))] += float(_get(row, "avg_ms", 0.0) or 0.0)
    by_name = {layer.name: layer for layer in analysis.layers}
    matched = 0
    for name, ms in times.items():
        layer = by_name.get(name)
        if layer is None:  # ONNX Runtime names fused nodes after the first node plus a suffix
            candidates = [n for n in by_name if name.startswith(n + "_") or name.startswith(n + "/")]
            layer = by_name[max(candidates, key=len)] if candidates else None
        if layer is not None:
            layer.measured_ms = (layer.measured_ms or 0.0) + ms
            matched += 1
    return matched


def measured_elementwise_share(comparison: ProfileComparison | None) -> float | None:
    """The element-wise family's share of the profiled time (0..1), or None without a profile."""
    if comparison is None or not comparison.total_ms:
        return None
    return sum(f.measured_ms for f in comparison.families if f.family == "elementwise") / comparison.total_ms
