"""``--target all``: benchmark one model on many devices at once, one worker thread per device.

Devices are independent (each has its own adb transport, run directory and cool-downs), so a fleet of N
takes about as long as its slowest device. A device that fails, whether before its first configuration
(unauthorized, offline, push failed) or during one, is kept in the merged report as ``status="failed"``
runs carrying its error; the other devices' results are never lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgekit.android_bench.results import BenchConfig, BenchReport, BenchRun, DeviceFacts
from edgekit.android_bench.target import Target
from edgekit.errors import EdgekitError


def failed_device_run(target: Target, model: str | Path, error: str, *, threads: int = 1,
                      accelerator: str = "-", runs: int = 0, min_secs: float = 0.0, warmup: int = 0) -> BenchRun:
    """The BenchRun that stands for a device that failed before it ran anything: facts as far as they are
    known (the target name at least), ``status="failed"`` and the one-line error."""
    facts = getattr(target, "known_facts", None) or DeviceFacts(target=target.name)
    config = BenchConfig(threads=threads, accelerator=accelerator, runs=runs, min_secs=min_secs, warmup_runs=warmup)
    return BenchRun(device=facts, model_file=str(model), model_sha256="", tool="-", tool_version=None,
                    config=config, status="failed", error=" ".join(error.split()))


def run_fleet(model: str | Path, targets: Sequence[Target], **options) -> BenchReport:
    """Run ``bench.run_benchmark(model, target, **options)`` on every target in parallel and merge.

    In: the model path, the targets (e.g. ``targets_from_spec("all")``), ``run_benchmark``'s keyword
    options (threads, accelerators, runs, min_secs, warmup, cooldown, op_profile, timeout, progress).
    Out: one BenchReport: each target's runs in target order; a target that raised contributes one
    failed run with its error, and a note. Raises EdgekitError only for an empty fleet.
    """
    from edgekit.android_bench.bench import run_benchmark

    if not targets:
        raise EdgekitError("fleet: no targets to benchmark")
    threads = options.get("threads") or (1,)
    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="edgekit-fleet") as pool:
        futures = [pool.submit(run_benchmark, model, target, **options) for target in targets]
        results: list[BenchReport | EdgekitError] = []
        for future in futures:
            try:
                results.append(future.result())
            except EdgekitError as exc:
                results.append(exc)
    runs: list[BenchRun] = []
    notes: list[str] = []
    for target, result in zip(targets, results, strict=True):
        if isinstance(result, BenchReport):
            runs += result.runs
            notes += result.notes
            continue
        message = " ".join(str(result).split())
        runs.append(failed_device_run(target, model, message, threads=threads[0], runs=options.get("runs", 0),
                                      min_secs=options.get("min_secs", 0.0), warmup=options.get("warmup", 0)))
        notes.append(f"{target.name}: failed before any run: {message}")
    return BenchReport(runs=runs, model_file=str(model), notes=notes)
