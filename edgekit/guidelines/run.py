"""``run_guidelines``: build the four guideline networks, export them, time them on a target, and lay the
results out as the paper's tables with its ARM and GPU columns beside them.

Timing goes through ``edgekit.android_bench`` (``make_target`` + ``run_benchmark``), one thread, the
target's default accelerator (XNNPACK for .tflite on the host). The networks of a table are timed in
interleaved rounds and each keeps its best round (the median of that round's runs), so a burst of load on
a shared machine does not land on one row only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.guidelines import paper
from edgekit.guidelines.networks import BLOCKS, NetworkSpec, all_networks
from edgekit.guidelines.results import (
    DirectionCheck,
    GuidelineCell,
    GuidelineReport,
    GuidelineRow,
    GuidelineTable,
)
from edgekit.progress import Progress, quiet

#: Default input height and width. The paper does not state its input size; 28x28 keeps the biggest network
#: (G2/G3 at x4: 10 x 256^2 x 784 = 0.5 G mult-adds) in tens of milliseconds on one x86 core, and the whole
#: command (51 networks, export + 5 timing rounds) within a few minutes on 2 cores.
DEFAULT_SPATIAL = 28
#: A ratio within this of 1.0 is "no clear difference", neither reproducing nor contradicting the paper.
TOLERANCE = 0.03

Measure = Callable[[Path], tuple[float | None, str | None]]

_TITLES = {
    "G1": ("G1: equal channel width minimises MAC (two 1x1 convs per block, equal FLOPs)", "c1:c2",
           "1:1 is fastest; speed falls as c1:c2 moves away from 1:1", ("1:1", ["1:12"])),
    "G2": ("G2: excessive group convolution increases MAC (1x1 group convs, equal FLOPs)", "g",
           "g = 1 is fastest; speed falls as the group count grows", ("g=1", ["g=8"])),
    "G3": ("G3: network fragmentation reduces parallelism (1x1 convs, equal FLOPs)", "structure",
           "1-fragment is fastest; 4 fragments (in series or in parallel) are slower",
           ("1-fragment", ["4-fragment-series", "4-fragment-parallel"])),
    "G4": ("G4: element-wise operations are non-negligible (ResNet bottleneck)", "ReLU, shortcut",
           "without ReLU and shortcut the block is faster than with both",
           ("ReLU no, shortcut no", ["ReLU yes, shortcut yes"])),
}


def export_network(spec: NetworkSpec, spatial: int, output_dir: Path, formats: Sequence[str] = ("tflite",)) -> Path:
    """Export one guideline network to ``output_dir/<slug>.tflite`` (and ``.onnx`` when asked); returns
    the file to time (the .tflite when made, else the .onnx). Raises ``ExportError``."""
    from edgekit.export.onnx_export import torch_to_onnx
    from edgekit.fileio import ensure_writable_dir

    out = ensure_writable_dir(output_dir)
    onnx_model = torch_to_onnx(spec.build(), (1, spec.in_channels, spatial, spatial))
    timed = None
    if "onnx" in formats:
        timed = out / f"{spec.slug}.onnx"
        timed.write_bytes(onnx_model.SerializeToString())
    if "tflite" in formats:
        from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
        from edgekit.export.tflite.writer import write_tflite

        graph, _ = onnx_to_tflite_graph(onnx_model)
        timed = out / f"{spec.slug}.tflite"
        timed.write_bytes(write_tflite(graph, description=f"edgekit guideline {spec.slug}", metadata={}))
    if timed is None:
        raise EdgekitError(f"no export format among {list(formats)}; use tflite and/or onnx")
    return timed


def benchmark_measure(target_spec: str = "host", *, threads: int = 1, runs: int = 5, min_secs: float = 0.2,
                      warmup: int = 2, timeout: float | None = 60.0) -> tuple[Measure, object]:
    """A function timing one file on ``target_spec`` with ``edgekit.android_bench`` (median ms of one run)
    and the target. The measure returns ``(median_ms, None)`` or ``(None, error)``; it never raises for
    a network the target cannot run."""
    from edgekit.android_bench import make_target, run_benchmark

    target = make_target(target_spec)

    def measure(path: Path) -> tuple[float | None, str | None]:
        try:
            report = run_benchmark(path, target, threads=[threads], runs=runs, min_secs=min_secs, warmup=warmup,
                                   timeout=timeout)
        except EdgekitError as exc:
            return None, " ".join(str(exc).split())
        ok = [r for r in report.runs if r.latency is not None and r.status in ("ok", "partial")]
        if not ok:
            errors = [r.error for r in report.runs if r.error] + report.notes
            return None, "; ".join(errors) or "no timed run"
        latency = ok[0].latency
        return latency.median_ms if latency.median_ms is not None else latency.mean_ms, None

    return measure, target


def run_guidelines(
    target: str = "host",
    *,
    spatial: int = DEFAULT_SPATIAL,
    multipliers: Sequence[int] = (1, 2, 4),
    threads: int = 1,
    rounds: int = 5,
    runs: int = 5,
    min_secs: float = 0.2,
    output_dir: str | Path = "edgekit-guidelines",
    formats: Sequence[str] = ("tflite",),
    measure: Measure | None = None,
    progress: Progress | None = None,
) -> GuidelineReport:
    """Build, export and time every guideline network; return the four tables with verdicts.

    ``multipliers`` picks the width columns (1, 2, 4 = the paper's x1, x2, x4 and its three c values).
    ``measure`` replaces the benchmark (tests); by default ``benchmark_measure(target, threads=...)``.
    A network that fails to export or run is marked ``failed`` in its cell and the run continues.
    Raises ``EdgekitError`` for bad arguments or an unusable target.
    """
    from edgekit.analysis import analyze

    say = progress or quiet
    if spatial < 1 or rounds < 1 or threads < 1:
        raise EdgekitError("spatial, rounds and threads must be positive")
    if any(m not in (1, 2, 4) for m in multipliers) or not multipliers:
        raise EdgekitError(f"multipliers must be among 1, 2, 4 (the paper's x1, x2, x4), got {list(multipliers)}")
    device = None
    if measure is None:
        measure, bench_target = benchmark_measure(target, threads=threads, runs=runs, min_secs=min_secs)
        try:
            device = bench_target.facts()
        except EdgekitError as exc:
            raise EdgekitError(f"guidelines: target {target}: {exc}") from None
    specs = all_networks(tuple(multipliers))
    cells: dict[str, GuidelineCell] = {}
    files: dict[str, Path] = {}
    out = Path(output_dir)
    for number, spec in enumerate(specs, start=1):
        # on the meta device: shapes only, no arithmetic
        analysis = analyze(spec.build().to("meta"), input_shape=(1, spec.in_channels, spatial, spatial))
        cell = GuidelineCell(column=spec.column, config=spec.config, mult_adds=analysis.mult_adds,
                             memory_access=analysis.memory_access, params=analysis.params)
        say(f"[{number}/{len(specs)}] exporting {spec.slug}")
        try:
            files[spec.slug] = export_network(spec, spatial, out, formats)
            cell.file = str(files[spec.slug])
        except EdgekitError as exc:
            cell.status, cell.error = "failed", f"export: {' '.join(str(exc).split())}"
        cells[spec.slug] = cell
    best: dict[str, float] = {}
    for round_number in range(1, rounds + 1):
        for guideline in ("G1", "G2", "G3", "G4"):
            say(f"round {round_number}/{rounds}: timing {guideline}")
            for spec in (s for s in specs if s.guideline == guideline):
                cell = cells[spec.slug]
                if cell.status == "failed":
                    continue
                median_ms, error = measure(files[spec.slug])
                if median_ms is None:
                    cell.status, cell.error = "failed", error
                    continue
                best[spec.slug] = min(best.get(spec.slug, median_ms), median_ms)
    for slug, ms in best.items():
        cells[slug].latency_ms = ms
        cells[slug].images_per_s = 1000.0 / ms if ms > 0 else None
    tables = [_table(g, [s for s in specs if s.guideline == g], cells, multipliers) for g in ("G1", "G2", "G3", "G4")]
    notes = [
        f"each network stacks {BLOCKS} blocks on a 1 x c x {spatial} x {spatial} input (c: its first block's width); "
        f"batch 1, {threads} thread(s); "
        f"best of {rounds} interleaved rounds (median of each)",
        "the paper's ARM column: Snapdragon 810, one thread, batch 1 (images/s); GPU: GTX 1080Ti, batch 8 "
        "(batches/s); the paper does not state its input size, so compare directions and ratios, not values",
        f"a direction check holds when the ratio is below {1 - TOLERANCE:.2f}; within {TOLERANCE:.0%} of 1 it is "
        "no clear difference",
    ]
    if "tflite" in formats:
        notes.append("TFLite export fuses each ReLU into the convolution or add before it, as deployed models do; "
                     "the G4 ReLU rows measure that fused form")
    return GuidelineReport(target=target, device=device, spatial=spatial, blocks=BLOCKS, threads=threads,
                           accelerator=None, rounds=rounds, tables=tables, notes=notes)


def _table(guideline: str, specs: list[NetworkSpec], cells: dict[str, GuidelineCell],
           multipliers: Sequence[int]) -> GuidelineTable:
    title, row_header, direction, (fast, slow_rows) = _TITLES[guideline]
    positions = [{1: 0, 2: 1, 4: 2}[m] for m in multipliers]
    rows: list[GuidelineRow] = []
    for label in dict.fromkeys(s.row for s in specs):
        arm, gpu, arm_config, gpu_config = _paper_row(guideline, label)
        rows.append(GuidelineRow(
            label=label, cells=[cells[s.slug] for s in specs if s.row == label],
            paper_arm=[arm[p] for p in positions], paper_gpu=[gpu[p] for p in positions],
            paper_arm_config=arm_config, paper_gpu_config=gpu_config))
    columns = [c.column for c in rows[0].cells] if rows else []
    arm_columns, gpu_columns = _paper_columns(guideline, positions)
    table = GuidelineTable(guideline=guideline, title=title, row_header=row_header, columns=columns,
                           paper_arm_columns=arm_columns, paper_gpu_columns=gpu_columns, rows=rows,
                           direction=direction)
    by_label = {row.label: row for row in rows}
    for slow in slow_rows:
        if fast not in by_label or slow not in by_label:
            continue
        for i, column in enumerate(columns):
            a, b = by_label[fast].cells[i], by_label[slow].cells[i]
            ratio = (b.images_per_s / a.images_per_s) if a.images_per_s and b.images_per_s else None
            table.checks.append(DirectionCheck(
                column=column, faster=fast, slower=slow, target_ratio=ratio,
                paper_arm_ratio=by_label[slow].paper_arm[i] / by_label[fast].paper_arm[i],
                paper_gpu_ratio=by_label[slow].paper_gpu[i] / by_label[fast].paper_gpu[i],
                holds=_holds(ratio)))
    table.verdict = verdict(table.checks)
    return table


def _holds(ratio: float | None) -> bool | None:
    """True: the paper's slower configuration is slower by more than TOLERANCE; False: faster by more;
    None: not measured, or within TOLERANCE of equal (no clear difference)."""
    if ratio is None or abs(ratio - 1.0) <= TOLERANCE:
        return None
    return ratio < 1.0


def verdict(checks: list[DirectionCheck]) -> str:
    """``reproduced`` when every clear check holds, ``not reproduced`` when none does, ``partly
    reproduced`` in between; ``no clear difference`` when every measured ratio is within TOLERANCE of 1,
    ``no data`` when nothing was measured."""
    measured = [c.holds for c in checks if c.holds is not None]
    if not measured:
        return "no clear difference" if any(c.target_ratio is not None for c in checks) else "no data"
    if all(measured):
        return "reproduced"
    return "partly reproduced" if any(measured) else "not reproduced"


def _paper_row(guideline: str, label: str):
    if guideline == "G1":
        gpu_pair, gpu, arm_pair, arm = paper.G1[label]
        return arm, gpu, f"({arm_pair[0]},{arm_pair[1]})", f"({gpu_pair[0]},{gpu_pair[1]})"
    if guideline == "G2":
        gpu_c, gpu, arm_c, arm = paper.G2[int(label.split("=")[1])]
        return arm, gpu, f"c={arm_c}", f"c={gpu_c}"
    if guideline == "G3":
        gpu, arm = paper.G3[label]
        return arm, gpu, None, None
    relu, shortcut = (re.search(r"ReLU (\w+)", label).group(1) == "yes",
                      re.search(r"shortcut (\w+)", label).group(1) == "yes")
    gpu, arm = paper.G4[(relu, shortcut)]
    return arm, gpu, None, None


def _paper_columns(guideline: str, positions: list[int]) -> tuple[list[str], list[str]]:
    if guideline in ("G1", "G2"):
        names = ["x1", "x2", "x4"]
        return [names[p] for p in positions], [names[p] for p in positions]
    if guideline == "G3":
        return [f"c={paper.G3_ARM_C[p]}" for p in positions], [f"c={paper.G3_GPU_C[p]}" for p in positions]
    return [f"c={paper.G4_C[p]}" for p in positions], [f"c={paper.G4_C[p]}" for p in positions]
