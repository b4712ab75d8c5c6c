"""The benchmark flow on a remote machine reached by a shell and file copies (adb devices, ssh boards).

A run gets its own directory (``WORK_ROOT/<run-id>/``); the model and either the benchmark binary
(``benchmark_model`` for .tflite, ``onnxruntime_perf_test`` for .onnx) or edgekit's device runner (when
the device has ``python3``) are pushed there; each configuration runs through the connection's shell with
every argument quoted, pinned with ``taskset MASK`` where the device has taskset, under the device's
``timeout`` where it has one; the output is parsed; ``cleanup`` removes the run directory. Every error
names the target and the step.

Every step has a time limit (``DeviceLimits``): a configuration its timeout (default 60 s), a push a time
that grows with the file's size, every other command a short one. A configuration that runs out of time is
killed on the device (its pid is recorded when it starts). After a step ran out of time the device may be
wedged: the next step gets a few seconds, and when that one gets no answer either the target gives up on
the device, so every later step fails at once instead of waiting out its own limit, and ``cleanup`` says
what was left where. Whatever fails, the whole flow ends within the limit that ran out plus a few seconds.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

from edgekit.android_bench.parsers import (
    ParsedBenchmark,
    UnparsableOutputError,
    parse_benchmark_model_output,
    parse_ort_profile,
    parse_perf_test_output,
    parse_runner_output,
)
from edgekit.android_bench.results import BenchConfig, BenchRun, CoreInfo, DeviceFacts
from edgekit.android_bench.shell import ShellResult, describe_exit, one_line, recording_pid, stop_argv
from edgekit.android_bench.target import Target
from edgekit.errors import DeviceError, DeviceTimeoutError, DeviceUnresponsiveError, EdgekitError, ModelFileError
from edgekit.fileio import sha256_file
from edgekit.progress import Progress

RUNNER = Path(__file__).with_name("device_runner.py")
PROFILE_BYTES = 64 << 20  # an ONNX Runtime op profile is a few MB; its pull is given the time of this many bytes
_T = TypeVar("_T")


@dataclass(frozen=True)
class DeviceLimits:
    """How long each kind of step on a device may take, in seconds.

    ``run_s``: a configuration when the caller gives no timeout. ``step_s``: a short command (facts, mkdir,
    chmod, temperature, cleanup). ``push_bytes_per_s``: the slowest copy accepted; a push of N bytes may
    take ``step_s + N / push_bytes_per_s`` (1 MB/s: a 10 MB model gets 25 s; USB does 20-40 MB/s, adb
    over Wi-Fi a few MB/s). ``grace_s``: how much longer than the device's own ``timeout`` the host waits
    for a configuration's result. ``recovery_s``: any step right after one that ran out of time; when it
    gets no answer either, the device is given up on.
    """

    run_s: float = 60.0
    step_s: float = 15.0
    push_bytes_per_s: float = 1e6
    grace_s: float = 2.0
    recovery_s: float = 5.0

    def __post_init__(self) -> None:
        if min(self.run_s, self.step_s, self.push_bytes_per_s, self.recovery_s) <= 0 or self.grace_s < 0:
            raise EdgekitError(f"device limits must be positive, got {self}")

    def transfer_s(self, size_bytes: int) -> float:
        """The time a copy of ``size_bytes`` may take."""
        return self.step_s + size_bytes / self.push_bytes_per_s

# Fixed scripts (no user input in them): what the device is, and how warm it is.
PROBE_SCRIPT = r"""
if command -v getprop >/dev/null 2>&1; then getprop; fi
printf 'uname\t%s\n' "$(uname -m 2>/dev/null)"
for f in /sys/devices/system/cpu/cpu[0-9]*; do
  [ -d "$f" ] && printf 'cpu\t%s\t%s\n' "${f##*/cpu}" "$(cat "$f/cpufreq/cpuinfo_max_freq" 2>/dev/null)"
done
for t in taskset timeout python3; do command -v "$t" >/dev/null 2>&1 && printf 'tool\t%s\n' "$t"; done
[ -r /proc/device-tree/model ] && printf 'dtmodel\t%s\n' "$(tr -d '\000' < /proc/device-tree/model)"
[ -r /etc/os-release ] && printf 'os\t%s\n' "$(sed -n 's/^PRETTY_NAME=//p' /etc/os-release)"
true
"""
THERMAL_SCRIPT = r"""
for z in /sys/class/thermal/thermal_zone*; do
  [ -r "$z/temp" ] && printf 'thermal\t%s\t%s\n' "$(cat "$z/type" 2>/dev/null)" "$(cat "$z/temp" 2>/dev/null)"
done
true
"""
_CPU_ZONE = re.compile(r"cpu|soc|tsens|cluster|core|x86_pkg|mtktscpu|little|big", re.I)

TOOLS_BY_SUFFIX = {".tflite": "benchmark_model", ".onnx": "onnxruntime_perf_test"}
ACCELERATORS = {
    "benchmark_model": ["xnnpack", "cpu", "gpu", "nnapi"],
    "onnxruntime_perf_test": ["cpu", "xnnpack", "nnapi"],
}


class Connection(Protocol):
    """What the flow needs from a transport: a quoted shell with exit codes, and file copies."""

    name: str

    def shell(self, argv, timeout_s: float | None = None, *, step: str = "shell") -> ShellResult: ...

    def check_shell(self, argv, timeout_s: float | None = None, *, step: str) -> ShellResult: ...

    def push(self, local, remote: str, *, step: str = "push", timeout_s: float | None = None) -> None: ...

    def pull(self, remote: str, local, *, step: str = "pull", timeout_s: float | None = None) -> None: ...

    def reconnect(self, timeout_s: float) -> None: ...


def new_run_id() -> str:
    """A run directory name that sorts by time and never collides: ``20250101-120000-1a2b3c4d``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


def parse_probe(text: str) -> dict:
    """In: the output of PROBE_SCRIPT. Out: ``{"props": {...}, "uname": str, "cores": [CoreInfo],
    "tools": set, "dtmodel": str|None, "os": str|None}``."""
    props = dict(re.findall(r"^\[([^\]]*)\]: \[(.*)\]\s*$", text, flags=re.M))
    out: dict = {"props": props, "uname": None, "cores": [], "tools": set(), "dtmodel": None, "os": None}
    for line in text.splitlines():
        parts = line.split("\t")
        if parts[0] == "cpu" and len(parts) == 3 and parts[1].isdigit():
            khz = int(parts[2]) if parts[2].strip().isdigit() else None
            out["cores"].append(CoreInfo(index=int(parts[1]), max_khz=khz))
        elif parts[0] == "tool" and len(parts) == 2:
            out["tools"].add(parts[1])
        elif parts[0] in ("uname", "dtmodel", "os") and len(parts) == 2 and parts[1].strip():
            out[parts[0]] = parts[1].strip().strip('"')
    out["cores"].sort(key=lambda c: c.index)
    return out


def parse_thermal(text: str) -> float | None:
    """In: the output of THERMAL_SCRIPT. Out: the hottest CPU/SoC zone in degrees C (else the hottest zone
    that is not the battery), or None when the device exposes no readable zone.

    Zones report millidegrees (most) or degrees (some); values outside -40..150 C are sensor noise."""
    readings = []
    for line in text.splitlines():
        parts = line.split("\t")
        if parts[0] != "thermal" or len(parts) != 3:
            continue
        try:
            value = float(parts[2])
        except ValueError:
            continue
        celsius = value / 1000.0 if abs(value) >= 1000 else value
        if -40.0 < celsius < 150.0:
            readings.append((parts[1], celsius))
    preferred = [c for kind, c in readings if _CPU_ZONE.search(kind)]
    others = [c for kind, c in readings if "batt" not in kind.lower()]
    chosen = preferred or others or [c for _, c in readings]
    return max(chosen) if chosen else None


def benchmark_model_argv(binary: str, model: str, config: BenchConfig, *, op_profile: bool) -> list[str]:
    """TFLite ``benchmark_model`` arguments for one configuration (``--use_xnnpack=false`` for ``cpu``)."""
    argv = [binary, f"--graph={model}", f"--num_threads={config.threads}", f"--num_runs={config.runs}",
            f"--min_secs={config.min_secs:g}", f"--warmup_runs={config.warmup_runs}"]
    accel = config.accelerator
    argv.append(f"--use_xnnpack={'true' if accel == 'xnnpack' else 'false'}")
    if accel == "gpu":
        argv.append("--use_gpu=true")
    elif accel == "nnapi":
        argv.append("--use_nnapi=true")
    if op_profile:
        argv.append("--enable_op_profiling=true")
    return argv


def perf_test_argv(binary: str, model: str, config: BenchConfig, *, profile_prefix: str | None) -> list[str]:
    """``onnxruntime_perf_test`` arguments: ``-m times -r RUNS -x THREADS -e EP -I`` (generated inputs)."""
    argv = [binary, "-m", "times", "-r", str(config.runs), "-x", str(config.threads), "-e", config.accelerator, "-I"]
    if profile_prefix:
        argv += ["-p", profile_prefix]
    return argv + [model]


def runner_argv(python: str, runner: str, model: str, config: BenchConfig, *, op_profile: bool) -> list[str]:
    """edgekit's device runner arguments (see ``device_runner.py``)."""
    argv = [python, runner, model, "--threads", str(config.threads), "--accelerator", config.accelerator,
            "--runs", str(config.runs), "--min-secs", f"{config.min_secs:g}", "--warmup", str(config.warmup_runs)]
    return argv + (["--op-profile"] if op_profile else [])


class RemoteTarget(Target):
    """A benchmark target behind a ``Connection``. Subclasses turn the probe into ``DeviceFacts``.

    In: the connection, ``work_root`` (the device directory that holds run directories),
    ``benchmark_binary`` (a local benchmark_model / onnxruntime_perf_test built for the device, or None
    to use the per-ABI cache, then edgekit's device runner where the device has python3),
    ``download_binary`` (fetch TFLite's prebuilt benchmark_model into the cache when none is there),
    ``progress`` (one-line messages, e.g. download progress), ``run_id`` (default: time + random),
    ``limits`` (how long each kind of step may take; default ``DeviceLimits()``).
    """

    def __init__(self, connection: Connection, *, work_root: str, benchmark_binary: str | Path | None = None,
                 run_id: str | None = None, python: str = "python3", download_binary: bool = False,
                 progress: Progress | None = None, limits: DeviceLimits | None = None) -> None:
        self.connection = connection
        self.name = connection.name
        self.serial: str | None = None
        self.work_root = work_root.rstrip("/")
        self.run_dir = f"{self.work_root}/{run_id or new_run_id()}"
        self.pid_file = f"{self.run_dir}/benchmark.pid"
        self.limits = limits or DeviceLimits()
        self.benchmark_binary = Path(benchmark_binary) if benchmark_binary else None
        self.python = python
        self.download_binary = download_binary
        self.progress = progress
        self.model: Path | None = None
        self.model_sha256 = ""
        self.remote_model: str | None = None
        self.tool: str | None = None
        self.remote_tool: str | None = None
        self._probe: dict | None = None
        self._facts: DeviceFacts | None = None
        self._created = False
        self._timed_out = False  # the last step ran out of time: the device may be wedged
        self._gave_up: str | None = None  # why the device is no longer asked anything
        self._maybe_running = False  # a benchmark was started and not seen to end

    # --- talking to the device ----------------------------------------------------------------------

    def _step(self, step: str, limit: float, action: Callable[[float], _T]) -> _T:
        """``action(limit)``: one step on the device. Right after a step that ran out of time the limit is
        ``recovery_s`` at most; when that step gets no answer either, the device is given up on: it and
        every later step raise DeviceUnresponsiveError, the later ones at once."""
        if self._gave_up:
            raise DeviceUnresponsiveError(f"{self.name}: {step}: not attempted: {self._gave_up}")
        if self._timed_out:
            limit = min(limit, self.limits.recovery_s)
        try:
            result = action(limit)
        except DeviceTimeoutError as exc:
            if not self._timed_out:
                self._timed_out = True
                raise
            self._gave_up = f"the device stopped answering ({step}: no answer within {limit:.3g} s)"
            raise DeviceUnresponsiveError(str(exc)) from None
        self._timed_out = False
        return result

    def _shell(self, argv: list[str], limit: float, *, step: str, check: bool = True) -> ShellResult:
        run = self.connection.check_shell if check else self.connection.shell
        return self._step(step, limit, lambda seconds: run(argv, seconds, step=step))

    def _push(self, local: Path, remote: str, *, step: str) -> None:
        size = local.stat().st_size if local.is_file() else 0

        def push(seconds: float) -> None:
            try:
                self.connection.push(local, remote, step=step, timeout_s=seconds)
            except DeviceTimeoutError:
                raise DeviceTimeoutError(
                    f"{self.name}: {step}: not finished after {seconds:.3g} s ({size / 1e6:.1f} MB; a push is "
                    f"given {self.limits.step_s:g} s + 1 s per {self.limits.push_bytes_per_s / 1e6:g} MB): the "
                    "connection stalled or is too slow") from None

        self._step(step, self.limits.transfer_s(size), push)

    # --- facts --------------------------------------------------------------------------------------

    def probe(self) -> dict:
        """The parsed PROBE_SCRIPT output (cached). Raises DeviceError (step ``read device facts``)."""
        if self._probe is None:
            result = self._shell(["sh", "-c", PROBE_SCRIPT], self.limits.step_s, step="read device facts")
            self._probe = parse_probe(result.stdout)
        return self._probe

    def facts(self) -> DeviceFacts:
        if self._facts is None:
            self._facts = self.facts_from_probe(self.probe())
        return self._facts

    @property
    def known_facts(self) -> DeviceFacts:
        """The facts read so far, without touching the device: the full ones after ``facts()``, else just
        the target's name (and serial), for reporting a device that failed early."""
        return self._facts or DeviceFacts(target=self.name, serial=self.serial)

    def facts_from_probe(self, probe: dict) -> DeviceFacts:
        return DeviceFacts(target=self.name, model=probe["dtmodel"], abi=probe["uname"], os_version=probe["os"],
                           cores=probe["cores"])

    def temperature_c(self) -> float | None:
        """The hottest CPU thermal zone now (C), None when there is none. Raises DeviceError if the device
        does not answer."""
        result = self._shell(["sh", "-c", THERMAL_SCRIPT], self.limits.step_s, step="read temperature")
        return parse_thermal(result.stdout)

    # --- prepare ------------------------------------------------------------------------------------

    def binary_abi(self) -> str:
        """The ABI key of the per-ABI binary cache (``arm64-v8a``; ``linux-aarch64`` for Linux boards)."""
        return self.facts().abi or "unknown"

    def _pick_tool(self, model: Path) -> str:
        """``benchmark_model``/``onnxruntime_perf_test`` (the binary passed, cached or downloaded on request),
        else ``edgekit-runner`` where the device has python3. Raises DeviceError saying what to provide."""
        from edgekit.android_bench.binaries import (
            BENCHMARK_MODEL,
            BinaryNotFoundError,
            download_benchmark_binary,
            resolve_benchmark_binary,
        )

        wanted = TOOLS_BY_SUFFIX[model.suffix.lower()]
        explicit = self.benchmark_binary
        if explicit is not None:
            if not explicit.is_file():
                raise DeviceError(f"{self.name}: prepare: benchmark binary {str(explicit)!r} does not exist")
            if "perf_test" in explicit.name:
                return "onnxruntime_perf_test"
            return "benchmark_model" if "benchmark_model" in explicit.name else wanted
        abi = self.binary_abi()
        try:
            self.benchmark_binary = resolve_benchmark_binary(wanted, abi)
            return wanted
        except BinaryNotFoundError as exc:
            missing = " ".join(str(exc).split())
        try:
            if self.download_binary and wanted == BENCHMARK_MODEL:
                self.benchmark_binary = download_benchmark_binary(abi, progress=self.progress)
                return wanted
        except EdgekitError as exc:
            raise DeviceError(f"{self.name}: prepare: {' '.join(str(exc).split())}") from None
        if "python3" in self.probe()["tools"]:
            return "edgekit-runner"
        raise DeviceError(f"{self.name}: prepare: {missing} (the device has no python3 for edgekit's runner either)")

    def prepare(self, model: Path) -> None:
        """Create the run directory and push the model and the tool. Raises ModelFileError for a missing or
        unsupported model, DeviceError naming the failed step (``push model``, ...)."""
        model = Path(model)
        if not model.is_file():
            raise ModelFileError(f"{self.name}: prepare: model file {str(model)!r} does not exist")
        if model.suffix.lower() not in TOOLS_BY_SUFFIX:
            raise ModelFileError(f"{self.name}: prepare: {model.name!r} is not a .tflite or .onnx file")
        self.tool = self._pick_tool(model)
        self.model, self.model_sha256 = model, sha256_file(model)
        self._created = True
        self._shell(["mkdir", "-p", self.run_dir], self.limits.step_s, step="create run directory")
        self.remote_model = f"{self.run_dir}/{model.name}"
        self._push(model, self.remote_model, step="push model")
        if self.tool == "edgekit-runner":
            self.remote_tool = f"{self.run_dir}/edgekit_device_runner.py"
            self._push(RUNNER, self.remote_tool, step="push device runner")
        else:
            self.remote_tool = f"{self.run_dir}/{self.tool}"
            self._push(self.benchmark_binary, self.remote_tool, step="push benchmark binary")
            self._shell(["chmod", "755", self.remote_tool], self.limits.step_s, step="make binary executable")

    def accelerators(self) -> list[str]:
        if self.tool == "edgekit-runner":
            return ["xnnpack", "cpu"] if self.model is not None and self.model.suffix == ".tflite" else ["cpu"]
        return list(ACCELERATORS.get(self.tool or "", ["cpu"]))

    # --- run ----------------------------------------------------------------------------------------

    def run(self, config: BenchConfig, *, op_profile: bool = False, timeout_s: float | None = None) -> BenchRun:
        """Run one configuration. Out: a BenchRun (``status="ok"``) with latency, memory, op profile and the
        raw output in ``raw_text``. Raises DeviceError naming the configuration for an unsupported
        accelerator, a crash (exit status and signal), a lost connection or unparsable output, and
        DeviceTimeoutError past ``timeout_s`` (None: ``limits.run_s``), after killing the benchmark on the
        device; the message says whether that worked."""
        if self.model is None or self.remote_model is None or self.remote_tool is None:
            raise DeviceError(f"{self.name}: run: call prepare(model) first")
        step = f"run {self.tool} ({config.accelerator}, {config.threads} thread(s))"
        if config.accelerator not in self.accelerators():
            raise DeviceError(f"{self.name}: {step}: accelerator {config.accelerator!r} is not supported by "
                              f"{self.tool} (have: {', '.join(self.accelerators())})")
        tools = self.probe()["tools"]
        profile_prefix = None
        if self.tool == "benchmark_model":
            argv = benchmark_model_argv(self.remote_tool, self.remote_model, config, op_profile=op_profile)
        elif self.tool == "onnxruntime_perf_test":
            profile_prefix = f"{self.run_dir}/ort_profile" if op_profile else None
            argv = perf_test_argv(self.remote_tool, self.remote_model, config, profile_prefix=profile_prefix)
        else:
            argv = runner_argv(self.python, self.remote_tool, self.remote_model, config, op_profile=op_profile)
            # The runtimes write caches and profiler scratch files under HOME and TMPDIR: keep them in the
            # run directory, which cleanup removes.
            argv = ["env", f"TMPDIR={self.run_dir}", f"HOME={self.run_dir}", *argv]
        mask = config.cpu_mask if "taskset" in tools else None
        if mask:
            argv = ["taskset", mask, *argv]
        argv = recording_pid(argv, self.pid_file)
        limit = timeout_s if timeout_s is not None else self.limits.run_s
        exceeded = (f"exceeded --timeout {timeout_s:g} s" if timeout_s is not None else
                    f"exceeded the default limit of {limit:g} s per configuration (pass a longer --timeout)")
        local_limit = limit
        if "timeout" in tools:
            argv = ["timeout", str(max(int(math.ceil(limit)), 1)), *argv]
            local_limit = limit + self.limits.grace_s
        self._maybe_running = True
        try:
            result = self._shell(argv, local_limit, step=step, check=False)
        except DeviceUnresponsiveError:
            raise
        except DeviceTimeoutError:
            outcome = self._stop_benchmark()
            error = DeviceUnresponsiveError if self._gave_up else DeviceTimeoutError
            raise error(f"{self.name}: {step}: {exceeded}; {outcome}") from None
        self._maybe_running = False
        raw = result.stdout + (f"\n--- stderr ---\n{result.stderr}" if result.stderr.strip() else "")
        if result.exit_code == 124 and "timeout" in tools:
            raise DeviceTimeoutError(f"{self.name}: {step}: {exceeded}")
        if result.exit_code != 0:
            detail = one_line(result.stderr) or one_line(result.stdout) or "no output"
            raise DeviceError(f"{self.name}: {step} failed: {describe_exit(result.exit_code)}: {detail}")
        parsed = self._parse(result.stdout + "\n" + result.stderr, step)
        run = BenchRun(
            device=self.facts(), model_file=str(self.model), model_sha256=self.model_sha256, tool=self.tool,
            tool_version=parsed.tool_version, config=replace(config, cpu_mask=mask), latency=parsed.latency,
            memory=parsed.memory, op_profile=parsed.op_profile, op_type_summary=parsed.op_type_summary,
            raw_text=raw,
        )
        if profile_prefix:
            self._pull_ort_profile(run, profile_prefix, config)
        return run

    def _stop_benchmark(self) -> str:
        """Kill the benchmark that ran out of time on the device. Out: what happened, for the error."""
        try:
            result = self._shell(stop_argv(self.pid_file, self.run_dir), self.limits.recovery_s,
                                 step="stop the benchmark")
        except DeviceError as exc:
            reason = self._gave_up or one_line(str(exc).removeprefix(f"{self.name}: "))
            return f"could not stop it on the device: {reason}"
        self._maybe_running = False
        return "stopped it on the device" if "stopped" in result.stdout else "it had ended on the device"

    def _parse(self, text: str, step: str) -> ParsedBenchmark:
        parser = {"benchmark_model": parse_benchmark_model_output, "onnxruntime_perf_test": parse_perf_test_output}
        try:
            if self.tool == "edgekit-runner":
                return parse_runner_output(text)[0]
            return parser[self.tool](text)
        except UnparsableOutputError as exc:
            raise DeviceError(f"{self.name}: {step}: {' '.join(str(exc).split())}") from None

    def _pull_ort_profile(self, run: BenchRun, prefix: str, config: BenchConfig) -> None:
        listing = self._shell(["sh", "-c", 'ls -1 "$1"_*.json 2>/dev/null', "sh", prefix], self.limits.step_s,
                              step="find op profile", check=False)
        names = [line for line in listing.stdout.splitlines() if line.strip()]
        if not names:
            run.status, run.error = "partial", f"{self.name}: op profile: onnxruntime_perf_test wrote no profile"
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "profile.json"
            self._step("pull op profile", self.limits.transfer_s(PROFILE_BYTES),
                       lambda seconds: self.connection.pull(names[-1], local, step="pull op profile",
                                                            timeout_s=seconds))
            try:
                run.op_profile, run.op_type_summary = parse_ort_profile(local.read_text(), skip_runs=1)
            except UnparsableOutputError as exc:
                run.status, run.error = "partial", f"{self.name}: op profile: {exc}"
        self._shell(["rm", "-f", names[-1]], self.limits.step_s, step="remove op profile", check=False)

    # --- cleanup ------------------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Kill a benchmark still running from the run directory, then remove the directory (a no-op when
        nothing was created or it is already gone). When the connection was lost, waits ``recovery_s``
        for the device to come back (adb reconnects network devices after a blip) and tries once more.

        Raises DeviceError (step ``clean up run directory``) naming the directory left on the device when
        it cannot be reached: the orchestrator records that as a note, next to the error that came first."""
        if not self._created:
            return
        try:
            self._remove_run_dir()
        except DeviceError as exc:
            running = " and the benchmark may still run there" if self._maybe_running else ""
            raise DeviceError(f"{one_line(str(exc))}; left {self.run_dir} on the device{running}") from None
        self._created = False
        self._maybe_running = False

    def _remove_run_dir(self) -> None:
        step = "clean up run directory"
        argv = stop_argv(self.pid_file, self.run_dir, remove=True)
        try:
            self._shell(argv, self.limits.step_s, step=step)
        except DeviceTimeoutError:
            raise
        except DeviceError:
            # The connection was lost: a device back within recovery_s (a blip, a replugged cable) gets one
            # more try.
            self._step("wait for the device", self.limits.recovery_s, self.connection.reconnect)
            self._shell(argv, self.limits.step_s, step=step)

