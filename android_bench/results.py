"""What a benchmark run measured, as plain dataclasses shared by every target and parser.

Times are milliseconds, memory megabytes, frequencies kHz. A field left None was not measured by that
tool; it is never filled with a zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from edgekit.op_profile import OpProfileRow, OpTypeRow  # defined in a leaf, which the report reads too


@dataclass
class LatencyStats:
    """Latency of one configuration. ``count`` is the number of timed inferences."""

    count: int
    mean_ms: float
    median_ms: float | None = None
    p90_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    warmup_ms: float | None = None  # mean of the warm-up runs
    p5_ms: float | None = None
    p95_ms: float | None = None
    p10_ms: float | None = None  # the low end of the spread reports show (host runs; tools print p5 at best)


@dataclass
class MemoryStats:
    init_mb: float | None = None
    overall_mb: float | None = None  # peak resident memory over the run


@dataclass
class CoreInfo:
    index: int
    max_khz: int | None = None
    # The clock /proc/cpuinfo showed when the facts were read, kept only where cpufreq gives no maximum (a VM):
    # it names the machine, but it moves with load, so nothing picks cores by it.
    clock_khz: int | None = None


@dataclass
class DeviceFacts:
    """What a target is: enough to pick big cores and to tell two runs' devices apart."""

    target: str  # "host", "adb:SERIAL", "ssh:USER@HOST"
    serial: str | None = None
    model: str | None = None
    soc: str | None = None
    abi: str | None = None
    os_version: str | None = None
    cores: list[CoreInfo] = field(default_factory=list)
    emulated: bool = False  # timings from an emulated CPU are not performance figures


@dataclass
class BenchConfig:
    threads: int
    accelerator: str  # "cpu", "xnnpack", "gpu", "nnapi"
    runs: int
    min_secs: float
    warmup_runs: int
    cpu_mask: str | None = None  # taskset mask used for big-core pinning


@dataclass
class BenchRun:
    """One configuration on one device: the unit of every benchmark result."""

    device: DeviceFacts
    model_file: str
    model_sha256: str
    tool: str  # "benchmark_model", "onnxruntime_perf_test", "edgekit-runner", "host"
    tool_version: str | None
    config: BenchConfig
    status: str = "ok"  # "ok", "partial", "failed"
    latency: LatencyStats | None = None
    memory: MemoryStats | None = None
    op_profile: list[OpProfileRow] = field(default_factory=list)
    temperature_c: float | None = None
    raw_output: str | None = None  # path of the tool's raw output kept beside the JSON
    error: str | None = None
    op_type_summary: list[OpTypeRow] = field(default_factory=list)  # per op type, slowest first
    # The tool's raw text as a target captured it; the writer moves it into ``raw_output`` (a file) and
    # clears this field, so the JSON never carries the raw text.
    raw_text: str | None = None


@dataclass
class BenchReport:
    """Every configuration benchmarked for one model file, on every target, and the notes of the run."""

    KIND: ClassVar[str] = "bench"  # in its JSON with VERSION (report.to_json); edgekit report reads by it
    VERSION: ClassVar[int] = 1

    runs: list[BenchRun]
    model_file: str
    notes: list[str] = field(default_factory=list)
