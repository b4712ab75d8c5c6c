"""The host target: benchmarks a model on this machine, in process, through edgekit's runtimes.

Latency is measured around ``Runtime.run`` (float32 NCHW in, as every caller uses it). Per-op profiles of
ONNX models come from ONNX Runtime's own profiler, run by edgekit's device runner in a child process with
this Python, so the in-process measurement never runs with profiling on. LiteRT's Python interpreter
exposes no op profiler, so ``.tflite`` runs have no per-op table on the host.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgekit.android_bench.parsers import UnparsableOutputError, parse_runner_output
from edgekit.android_bench.results import (
    BenchConfig,
    BenchRun,
    CoreInfo,
    DeviceFacts,
    LatencyStats,
    MemoryStats,
)
from edgekit.android_bench.target import Target
from edgekit.errors import EdgekitError, ModelFileError
from edgekit.fileio import sha256_file
from edgekit.runtimes import open_runtime
from edgekit.runtimes.base import nchw_input_shape

RUNNER = Path(__file__).with_name("device_runner.py")


class HostBenchError(EdgekitError):
    """A host benchmark step that failed (model would not open or run, profiler failed)."""


def read_proc_status(path: str = "/proc/self/status") -> dict[str, float]:
    """``VmRSS``/``VmHWM``/``VmPeak`` of a process in MiB, from its ``/proc/<pid>/status``; {} elsewhere."""
    values: dict[str, float] = {}
    try:
        with open(path) as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "VmPeak") and rest.split():
                    values[key] = int(rest.split()[0]) / 1024.0
    except OSError:
        pass
    return values


def host_cores(sysfs: str = "/sys/devices/system/cpu", cpuinfo: str = "/proc/cpuinfo") -> list[CoreInfo]:
    """The cores this process may run on (``sched_getaffinity``, else ``os.cpu_count()``), each with
    ``cpuinfo_max_freq`` from cpufreq, or, where cpufreq gives none (virtual machines), the ``cpu MHz`` that
    ``cpuinfo`` shows for it as ``clock_khz``. Unreadable files leave the frequencies None."""
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    clocks: dict[int, int] | None = None
    cores = []
    for index in sorted(usable):
        core = CoreInfo(index=index, max_khz=_read_khz(Path(sysfs, f"cpu{index}", "cpufreq", "cpuinfo_max_freq")))
        if core.max_khz is None:
            clocks = _cpuinfo_clocks(cpuinfo) if clocks is None else clocks
            core.clock_khz = clocks.get(index)
        cores.append(core)
    return cores


def _read_khz(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _cpuinfo_clocks(path: str) -> dict[int, int]:
    """``processor`` index -> its ``cpu MHz`` in kHz, from /proc/cpuinfo (x86 has the field, ARM does not)."""
    clocks: dict[int, int] = {}
    processor = None
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return clocks
    for line in lines:
        key, _, value = (part.strip() for part in line.partition(":"))
        try:
            if key == "processor":
                processor = int(value)
            elif key == "cpu MHz" and processor is not None:
                clocks[processor] = round(float(value) * 1000)
        except ValueError:
            continue
    return clocks


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "CPU part") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


class HostTarget(Target):
    """This machine. Accelerators: ``xnnpack`` and ``cpu`` (XNNPACK off) for ``.tflite``, ``cpu`` for ``.onnx``.

    ``runner_python`` is the interpreter the op profiler runs under (default: this one).
    """

    name = "host"

    def __init__(self, runner_python: str | None = None) -> None:
        self.runner_python = runner_python or sys.executable
        self.model: Path | None = None
        self.model_sha256 = ""
        self._facts: DeviceFacts | None = None

    def facts(self) -> DeviceFacts:
        """Machine, CPU model, ABI (``platform.machine()``), OS and cores with their max frequencies."""
        if self._facts is None:
            self._facts = DeviceFacts(
                target="host",
                model=platform.node() or None,
                soc=_cpu_model(),
                abi=platform.machine() or None,
                os_version=f"{platform.system()} {platform.release()}",
                cores=host_cores(),
            )
        return self._facts

    def prepare(self, model: Path) -> None:
        """Check the model file and hash it. Raises ``ModelFileError`` for a missing or unsupported file."""
        model = Path(model)
        if not model.is_file():
            raise ModelFileError(f"host: prepare: model file {model} does not exist")
        if model.suffix.lower() not in (".onnx", ".tflite"):
            raise ModelFileError(f"host: prepare: {model} is not a .onnx or .tflite file")
        # Loads and runs it once in an isolated child first: a damaged file fails here, in one line, before
        # any configuration, and the CLI exits 2 as for every bad model file.
        with open_runtime(model):
            pass
        self.model = model
        self.model_sha256 = sha256_file(model)

    def accelerators(self) -> list[str]:
        if self.model is not None and self.model.suffix.lower() == ".tflite":
            return ["xnnpack", "cpu"]
        return ["cpu"]

    def run(self, config: BenchConfig, *, op_profile: bool = False, timeout_s: float | None = None) -> BenchRun:
        """Warm up, then time at least ``config.runs`` inferences and ``config.min_secs`` seconds.

        ``config.cpu_mask`` (hex) pins this process to those cores for the run. Past ``timeout_s`` the
        timed loop stops and the run comes back ``status="partial"``. Raises ``HostBenchError`` when the
        model cannot be opened or run; ``EdgekitError`` if ``prepare`` was not called.
        """
        if self.model is None:
            raise EdgekitError("host: run: call prepare(model) first")
        base = BenchRun(
            device=self.facts(), model_file=str(self.model), model_sha256=self.model_sha256, tool="host",
            tool_version=None, config=config,
        )
        if config.accelerator not in self.accelerators():
            base.status = "failed"
            base.error = (f"host: run: accelerator {config.accelerator!r} is not available for "
                          f"{self.model.suffix} models here (have: {', '.join(self.accelerators())})")
            return base

        previous_affinity = _pin(config.cpu_mask)
        try:
            before = read_proc_status()
            started = time.perf_counter()
            try:
                runtime = open_runtime(self.model, threads=config.threads, xnnpack=config.accelerator == "xnnpack")
            except EdgekitError as exc:
                raise HostBenchError(f"host: open {self.model.name}: {exc}") from exc
            init_ms = (time.perf_counter() - started) * 1e3
            after_init = read_proc_status()
            with runtime:
                base.tool_version = f"{runtime.name} {runtime.version}"
                x = _example_input(runtime)
                times, first_ms, warmup_ms, timed_out = _time_runs(runtime, x, config, timeout_s)
            peak = read_proc_status()
        finally:
            _unpin(previous_affinity)

        base.latency = LatencyStats(
            count=len(times),
            mean_ms=statistics.fmean(times),
            median_ms=statistics.median(times),
            p10_ms=float(np.percentile(times, 10)),
            p90_ms=float(np.percentile(times, 90)),
            min_ms=min(times),
            max_ms=max(times),
            std_ms=statistics.pstdev(times) if len(times) > 1 else 0.0,
            init_ms=init_ms,
            first_ms=first_ms,
            warmup_ms=warmup_ms,
        )
        base.memory = MemoryStats(
            init_mb=_delta(after_init.get("VmRSS"), before.get("VmRSS")),
            overall_mb=peak.get("VmHWM"),
        )
        base.raw_text = json.dumps({"tool": base.tool_version, "config": config.__dict__, "times_ms": times})
        if timed_out:
            base.status = "partial"
            base.error = (f"host: run: stopped after {len(times)} of {config.runs} runs, "
                          f"timeout {timeout_s:g} s reached")
        if op_profile:
            self._profile(base, config, timeout_s)
        return base

    def _profile(self, run: BenchRun, config: BenchConfig, timeout_s: float | None) -> None:
        if self.model is None or self.model.suffix.lower() != ".onnx":
            return  # LiteRT's Python API has no op profiler; the table stays empty
        command = [
            self.runner_python, str(RUNNER), str(self.model), "--threads", str(config.threads),
            "--accelerator", "cpu", "--runs", str(max(min(config.runs, 20), 1)), "--warmup",
            str(max(config.warmup_runs, 1)), "--op-profile",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
            parsed, _ = parse_runner_output(done.stdout + done.stderr)
        except subprocess.TimeoutExpired:
            run.error = f"host: op profile: profiler run exceeded {timeout_s:g} s"
            run.status = "partial"
            return
        except UnparsableOutputError as exc:
            run.error = f"host: op profile: {exc}"
            run.status = "partial"
            return
        run.op_profile = parsed.op_profile
        run.op_type_summary = parsed.op_type_summary

    def cleanup(self) -> None:
        """Nothing to remove on the host; kept for the Target lifecycle."""


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else max(after - before, 0.0)


def _example_input(runtime) -> list[np.ndarray]:
    """Seeded uniform noise in each of the runtime's NCHW input shapes (dynamic dimensions as 1)."""
    rng = np.random.default_rng(0)
    inputs = []
    for spec in runtime.inputs:
        shape = nchw_input_shape(spec)
        if all(d is None for d in spec.shape) and len(shape) == 4:
            shape = [1, 3, 224, 224]
        inputs.append(rng.uniform(-1.0, 1.0, size=shape).astype(np.float32))
    return inputs


def _time_runs(runtime, x, config: BenchConfig, timeout_s: float | None):
    deadline = None if timeout_s is None else time.perf_counter() + timeout_s
    try:
        started = time.perf_counter()
        runtime.run(x)
        first_ms = (time.perf_counter() - started) * 1e3
        warm = []
        for _ in range(config.warmup_runs):
            started = time.perf_counter()
            runtime.run(x)
            warm.append((time.perf_counter() - started) * 1e3)
        times: list[float] = []
        began = time.perf_counter()
        timed_out = False
        while len(times) < config.runs or time.perf_counter() - began < config.min_secs:
            if deadline is not None and time.perf_counter() > deadline and times:
                timed_out = True
                break
            started = time.perf_counter()
            runtime.run(x)
            times.append((time.perf_counter() - started) * 1e3)
    except EdgekitError as exc:
        raise HostBenchError(f"host: run {runtime.name}: {exc}") from exc
    return times, first_ms, (statistics.fmean(warm) if warm else None), timed_out


def _pin(mask: str | None):
    if not mask or not hasattr(os, "sched_setaffinity"):
        return None
    cores = {i for i in range(int(mask, 16).bit_length()) if int(mask, 16) >> i & 1}
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores & previous or previous)
    return previous


def _unpin(previous) -> None:
    if previous is not None:
        os.sched_setaffinity(0, previous)
