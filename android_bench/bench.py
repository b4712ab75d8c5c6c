"""The benchmark orchestrator: one model, one or more targets, every thread count and accelerator.

``run_benchmark`` drives a ``Target`` through its lifecycle (facts, prepare, a run per configuration with
a cool-down and a temperature reading between configurations, cleanup always) and keeps what finished when
a configuration fails. ``write_bench_outputs`` writes ``bench.json``, ``bench.md``, ``bench.html`` and the
raw tool outputs beside them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgekit.android_bench.results import BenchConfig, BenchReport, BenchRun, CoreInfo
from edgekit.android_bench.target import Target
from edgekit.errors import DeviceUnresponsiveError, EdgekitError, OutputError
from edgekit.fileio import staged_files
from edgekit.progress import Progress, quiet
from edgekit.report import bench_html, bench_markdown, to_json

EMULATED_NOTE = "timings from an emulated CPU (qemu) are not performance figures"


def big_core_mask(cores: Sequence[CoreInfo], threads: int) -> str | None:
    """The ``taskset`` mask (hex, no ``0x``) that pins ``threads`` threads to the fastest cores.

    In: the device's cores with their max frequencies (kHz) and the thread count. Out: a mask of the
    ``max(threads, number of top-frequency cores)`` fastest cores, e.g. ``"f0"`` for the four big cores
    of a 4+4 phone; ``None`` when there is nothing to pick (frequencies unknown or all equal, or the
    mask would hold every core), so the run is not pinned at all.
    """
    known = [c for c in cores if c.max_khz]
    if not known or len(known) < len(cores) or len({c.max_khz for c in known}) == 1:
        return None
    ranked = sorted(known, key=lambda c: (-(c.max_khz or 0), c.index))
    top = ranked[0].max_khz
    wanted = max(threads, sum(1 for c in ranked if c.max_khz == top))
    chosen = ranked[:wanted]
    if len(chosen) >= len(cores):
        return None
    return format(sum(1 << c.index for c in chosen), "x")


def run_benchmark(
    model: str | Path,
    target: Target,
    *,
    threads: Sequence[int] = (1,),
    accelerators: Sequence[str] | None = None,
    runs: int = 50,
    min_secs: float = 1.0,
    warmup: int = 5,
    cooldown: float = 0.0,
    op_profile: bool = False,
    timeout: float | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BenchReport:
    """Benchmark ``model`` on ``target`` for every (accelerator, threads) pair.

    In: a .tflite/.onnx path; a ``Target``; thread counts; accelerators (default: the target's first,
    its default); at least ``runs`` timed inferences and ``min_secs`` seconds per configuration after
    ``warmup`` warm-up runs; ``cooldown`` seconds of idle between configurations; ``op_profile`` for
    per-op tables; ``timeout`` seconds per configuration; ``progress`` receives one-line messages.
    Device facts are read first; each run is pinned to the big cores (``big_core_mask``) and records the
    temperature the target reported before it. Out: a ``BenchReport`` with one ``BenchRun`` per
    configuration; a configuration that raised (timed out, crashed, lost its device) is kept as
    ``status="failed"`` with the one-line error, and the ones before it are kept. ``target.cleanup()`` runs
    always; when it fails, a note says what was left on the device.
    Raises ``EdgekitError`` for bad arguments or when the target fails before any configuration ran
    (facts or prepare), after cleaning up (the message then also says what cleanup could not remove).
    """
    say = progress or quiet
    if not threads or any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in threads):
        raise EdgekitError(f"threads must be positive integers, got {list(threads)!r}")
    if runs < 1 or min_secs < 0 or warmup < 0 or cooldown < 0 or (timeout is not None and timeout <= 0):
        raise EdgekitError("runs must be >= 1 and min_secs, warmup, cooldown >= 0 (timeout > 0)")
    model = Path(model)
    results: list[BenchRun] = []
    notes: list[str] = []
    failure: EdgekitError | None = None
    leftover: str | None = None
    try:
        say(f"{target.name}: reading device facts")
        facts = target.facts()
        if facts.emulated:
            notes.append(f"{facts.target}: {EMULATED_NOTE}")
        say(f"{target.name}: preparing {model.name}")
        target.prepare(model)
        chosen = list(accelerators) if accelerators else target.accelerators()[:1]
        configs = [(accel, t) for accel in chosen for t in threads]
        unresponsive = False
        for number, (accel, count) in enumerate(configs, start=1):
            if number > 1 and cooldown > 0 and not unresponsive:
                say(f"{target.name}: cooling down {cooldown:g} s")
                sleep(cooldown)
            temperature = _temperature(target)
            config = BenchConfig(
                threads=count, accelerator=accel, runs=runs, min_secs=min_secs, warmup_runs=warmup,
                cpu_mask=big_core_mask(facts.cores, count),
            )
            say(f"{target.name}: [{number}/{len(configs)}] {accel}, {count} thread(s)"
                + (f", cores {config.cpu_mask}" if config.cpu_mask else ""))
            try:
                run = target.run(config, op_profile=op_profile, timeout_s=timeout)
            except EdgekitError as exc:
                # a device that stopped answering fails every later step at once: no cool-down before those
                unresponsive = unresponsive or isinstance(exc, DeviceUnresponsiveError)
                run = BenchRun(
                    device=facts, model_file=str(model), model_sha256="", tool="-", tool_version=None,
                    config=config, status="failed", error=" ".join(str(exc).split()),
                )
            if run.temperature_c is None:
                run.temperature_c = temperature
            results.append(run)
            if run.status != "ok":
                say(f"{target.name}: {accel}/{count}: {run.status}: {run.error}")
    except EdgekitError as exc:
        failure = exc
    finally:
        leftover = _cleanup(target)
    if failure is not None and not results:
        if leftover:
            failure.args = (f"{failure}; cleanup failed: {leftover}",)
        raise failure
    if failure is not None:
        notes.append(f"{target.name}: stopped early; the runs listed are the ones that finished")
    if leftover:
        notes.append(f"{target.name}: cleanup failed: {leftover}")
    return BenchReport(runs=results, model_file=str(model), notes=notes)


def _cleanup(target: Target) -> str | None:
    """``target.cleanup()``; out: None, or why it failed (one line, without the target's name)."""
    try:
        target.cleanup()
    except EdgekitError as exc:
        return " ".join(str(exc).split()).removeprefix(f"{target.name}: ")
    return None


def run_benchmarks(model: str | Path, targets: Sequence[Target], **options) -> BenchReport:
    """``run_benchmark`` on several targets at once, one worker thread per target, merged in target order.

    A target that fails before any run contributes a note instead of runs. Takes ``run_benchmark``'s
    keyword options. Out: one ``BenchReport``. Raises ``EdgekitError`` only when every target failed.
    """
    if len(targets) == 1:
        return run_benchmark(model, targets[0], **options)
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        futures = [pool.submit(run_benchmark, model, target, **options) for target in targets]
    runs: list[BenchRun] = []
    notes: list[str] = []
    errors = []
    for target, future in zip(targets, futures, strict=True):
        try:
            report = future.result()
        except EdgekitError as exc:
            errors.append(f"{target.name}: {exc}")
            continue
        runs += report.runs
        notes += report.notes
    if not runs and errors:
        raise EdgekitError("; ".join(errors))
    return BenchReport(runs=runs, model_file=str(model), notes=notes + errors)


def write_bench_outputs(report: BenchReport, output_dir: str | Path) -> dict[str, Path]:
    """Write ``bench.json``, ``bench.md``, ``bench.html`` and each run's raw tool output into ``output_dir``.

    Raw outputs go to ``raw/<device>_<accelerator>_t<threads>.txt``; each run's ``raw_output`` is set
    to that relative path and its ``raw_text`` cleared (the report is updated in place, and left as it was
    when writing fails). Every file is written under a temporary name and renamed into place once all of
    them are written, so a full disk leaves the previous files (or none), never a truncated one.
    Out: ``{"json", "markdown", "html"}`` -> path.
    Raises ``OutputError`` when the directory cannot be written.
    """
    out = Path(output_dir)
    moved: list[tuple[BenchRun, str]] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        with staged_files() as staged:
            for run in report.runs:
                if run.raw_text is not None:
                    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{run.device.target}_{run.config.accelerator}"
                                  f"_t{run.config.threads}")
                    relative = Path("raw") / f"{slug}.txt"
                    (out / "raw").mkdir(exist_ok=True)
                    staged.write_text(out / relative, run.raw_text)
                    moved.append((run, run.raw_text))
                    run.raw_output, run.raw_text = str(relative), None
            paths = {"json": out / "bench.json", "markdown": out / "bench.md", "html": out / "bench.html"}
            staged.write_text(paths["json"], to_json(report))
            staged.write_text(paths["markdown"], bench_markdown(report))
            staged.write_text(paths["html"], bench_html(report))
            staged.commit()
    except (OSError, OutputError) as exc:
        for run, text in moved:
            run.raw_output, run.raw_text = None, text
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write benchmark results to {out}: {exc.strerror or exc}") from exc
    return paths


def _temperature(target: Target) -> float | None:
    try:
        return target.temperature_c()
    except EdgekitError:
        return None
