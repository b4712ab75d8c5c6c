"""Parsers of benchmark tools' output: pure functions from the text a tool printed to result dataclasses.

Covered: TFLite's ``benchmark_model`` (every output generation from 2018's ``Average inference timings in
us: Warmup: ..., Init: ..., no stats: ...`` to today's ``Inference timings in us: Init: ..., First
inference: ..., Warmup (avg): ..., Inference (avg): ...`` with ``p5= median= p95=``, native or through
logcat), ONNX Runtime's ``onnxruntime_perf_test`` (``Average inference time cost[ total]: X ms``,
``P50 Latency: X s`` and ``P50 Latency is X sec``), ONNX Runtime's JSON profile trace, and the JSON
document edgekit's own device runner prints. Times come out in milliseconds, memory in MiB.

Output that carries no latency is an ``UnparsableOutputError`` that quotes the end of what the tool
printed; a missing value is None, never zero.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

from edgekit.android_bench.results import LatencyStats, MemoryStats, OpProfileRow, OpTypeRow
from edgekit.errors import EdgekitError

__all__ = [
    "ParsedBenchmark",
    "UnparsableOutputError",
    "output_tail",
    "parse_benchmark_model_output",
    "parse_perf_test_output",
    "parse_ort_profile",
    "parse_runner_output",
    "summarize_op_types",
]

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
# Logcat prefixes: "I tflite  : " and the threadtime form "07-14 13:14:52.097 22838 22838 I tflite  : ".
_LOGCAT_PREFIX = re.compile(r"^(?:\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+)?[VDIWEF][ /]tflite\s*:\s?")


class UnparsableOutputError(EdgekitError):
    """A benchmark tool printed something that holds no latency figures (crash, truncation, new format)."""


@dataclass
class ParsedBenchmark:
    """What one tool run measured. ``op_profile`` is the run-order table, ``top_ops`` the slowest ops as the
    tool ranked them, ``op_type_summary`` the per-type totals (slowest first)."""

    latency: LatencyStats
    memory: MemoryStats | None = None
    op_profile: list[OpProfileRow] = field(default_factory=list)
    top_ops: list[OpProfileRow] = field(default_factory=list)
    op_type_summary: list[OpTypeRow] = field(default_factory=list)
    tool_version: str | None = None


def output_tail(text: str, limit: int = 200) -> str:
    """The last ``limit`` characters of ``text`` on one line (newlines shown as `` | ``), for error messages."""
    flat = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    if not flat:
        return "(no output)"
    return flat if len(flat) <= limit else "..." + flat[-limit:]


def _unparsable(tool: str, what: str, text: str) -> UnparsableOutputError:
    return UnparsableOutputError(f"{tool} output has no {what}; the tool printed: {output_tail(text)!r}")


# --- benchmark_model ----------------------------------------------------------------------------------

_COUNT_LINE = re.compile(rf"^count=(\d+)(?P<rest>(?:\s+\w+={_NUM})*)\s*$")
_KV = re.compile(rf"(\w+)=({_NUM})")
_NEW_SUMMARY = re.compile(
    rf"Inference timings in us:\s*Init:\s*({_NUM}),\s*First inference:\s*({_NUM}),\s*"
    rf"Warmup \(avg\):\s*({_NUM}),\s*Inference \(avg\):\s*({_NUM})"
)
_OLD_SUMMARY = re.compile(
    rf"Average inference timings in us:\s*Warmup:\s*({_NUM}),\s*Init:\s*({_NUM}),\s*"
    rf"(?:no stats|Inference):\s*({_NUM})"
)
_MEMORY = re.compile(
    rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*"
    rf"init=({_NUM})\s+overall=({_NUM})"
)
_PEAK_POLLED = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({_NUM})")
_TIMINGS_LINE = re.compile(r"^Timings \(microseconds\):\s*(count=.*)$")
_SECTION = re.compile(r"^=+\s*(Run Order|Top by Computation Time|Summary by node type)\s*=+$")
_REGULAR_PROFILE = "Operator-wise Profiling Info for Regular Benchmark Runs"


def _lines(text: str) -> list[str]:
    """The tool's lines without logcat prefixes or trailing whitespace (leading tabs kept for tables)."""
    return [_LOGCAT_PREFIX.sub("", line.rstrip("\r\n")).rstrip() for line in text.splitlines()]


def parse_benchmark_model_output(text: str) -> ParsedBenchmark:
    """Parse what TFLite's ``benchmark_model`` (or its Android app, via logcat) printed.

    In: the tool's whole stdout+stderr. Out: ``ParsedBenchmark`` with latency (init, first, warm-up mean,
    mean, and from the regular-run ``count=`` line count/min/max/std plus median where the tool prints
    ``median=``), memory (``init``/``overall`` MB) when printed, and with ``--enable_op_profiling`` the
    run-order table, the top ops and the summary by node type of the regular runs.
    Raises ``UnparsableOutputError`` (message quotes the output's tail) when neither a timings summary
    nor a regular-run ``count=`` line is present, e.g. after ``Benchmarking failed.`` or a crash.
    """
    lines = _lines(text)
    count_lines = []
    for line in lines:
        m = _COUNT_LINE.match(line.strip())
        if m:
            count_lines.append(_count_fields(line.strip()))
    profile_timings = [
        _count_fields(m.group(1)) for m in (_TIMINGS_LINE.match(line.strip()) for line in lines) if m
    ]

    joined = "\n".join(lines)
    new = _NEW_SUMMARY.search(joined)
    old = _OLD_SUMMARY.search(joined)
    # The regular runs are reported by the last standalone count= line that has first=; the one before
    # it (or a "count=1 curr=" line) is the warm-up.
    regular = next((c for c in reversed(count_lines) if "first" in c), None)
    if regular is None and profile_timings:
        regular = profile_timings[-1]
    if new is None and old is None and regular is None:
        raise _unparsable("benchmark_model", "latency figures (no 'Inference timings' or 'count=' line)", text)

    us = 1e-3
    init_ms = first_ms = warmup_ms = mean_ms = None
    if new:
        init_ms, first_ms, warmup_ms, mean_ms = (float(g) * us for g in new.groups())
    elif old:
        warmup_ms, init_ms, mean_ms = (float(g) * us for g in old.groups())
    if mean_ms is None and regular is not None:
        mean_ms = regular["avg"] * us
    if first_ms is None and len(count_lines) >= 2:
        # Older tools print no "First inference"; the first warm-up run is the first inference.
        warm = count_lines[0]
        first = warm.get("first", warm.get("curr") if warm.get("count") == 1 else None)
        first_ms = first * us if first is not None else None
    if init_ms is None:
        m = re.search(rf"Initialized session in ({_NUM})\s*ms", joined)
        init_ms = float(m.group(1)) if m else None

    if regular is None:
        raise _unparsable("benchmark_model", "regular-run 'count=' line (output truncated?)", text)
    latency = LatencyStats(
        count=int(regular["count"]),
        mean_ms=mean_ms,
        median_ms=_get(regular, "median", us),
        min_ms=_get(regular, "min", us),
        max_ms=_get(regular, "max", us),
        std_ms=_get(regular, "std", us),
        init_ms=init_ms,
        first_ms=first_ms,
        warmup_ms=warmup_ms,
    )

    memory = None
    mem = _MEMORY.search(joined)
    polled = _PEAK_POLLED.search(joined)
    if mem or polled:
        memory = MemoryStats(
            init_mb=float(mem.group(1)) if mem else None,
            overall_mb=float(polled.group(1)) if polled else float(mem.group(2)),
        )

    op_profile, top_ops, summary = _parse_op_tables(lines)
    return ParsedBenchmark(latency, memory, op_profile, top_ops, summary)


def _count_fields(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in _KV.findall(line)}


def _get(fields: dict[str, float] | None, key: str, scale: float) -> float | None:
    if fields is None or key not in fields:
        return None
    return fields[key] * scale


def _parse_op_tables(lines: list[str]) -> tuple[list[OpProfileRow], list[OpProfileRow], list[OpTypeRow]]:
    """The op tables of the regular runs (the initialisation profile printed before them is skipped)."""
    start = next((i for i, line in enumerate(lines) if _REGULAR_PROFILE in line), None)
    if start is None:
        # Older tools print only the regular-run tables, with no heading; newer ones always head them.
        if any("Profiling Info for Benchmark Initialization" in line for line in lines):
            return [], [], []
        start = 0
    run_order: list[OpProfileRow] = []
    top: list[OpProfileRow] = []
    summary: list[OpTypeRow] = []
    section = None
    for line in lines[start:]:
        stripped = line.strip()
        header = _SECTION.match(stripped)
        if header:
            section = header.group(1)
            continue
        if not stripped or stripped.startswith("[") or section is None:
            if stripped.startswith(("Timings", "Number of nodes")):
                section = None
            continue
        if section == "Summary by node type":
            row = _summary_row(line)
            if row is None:
                section = None
            else:
                summary.append(row)
            continue
        row = _op_row(line, len(run_order) if section == "Run Order" else len(top))
        if row is None:
            section = None
        elif section == "Run Order":
            run_order.append(row)
        else:
            top.append(row)
    return run_order, top, summary


def _split_row(line: str, columns: int) -> list[str] | None:
    if "\t" in line:
        parts = [p.strip() for p in line.strip("\t ").split("\t")]
    else:
        parts = line.split(None, columns - 1)
    return parts if len(parts) >= columns - 1 else None


def _op_row(line: str, index: int) -> OpProfileRow | None:
    # [node type] [start] [first] [avg ms] [%] [cdf%] [mem KB] [times called] [Name]
    parts = _split_row(line, 9)
    if parts is None:
        return None
    try:
        avg_ms = float(parts[3])
        percent = float(parts[4].rstrip("%"))
    except ValueError:
        return None
    name = parts[8] if len(parts) > 8 else ""
    name = re.sub(r":\d+$", "", name).strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return OpProfileRow(index=index, op_type=parts[0], name=name, avg_ms=avg_ms, percent=percent)


def _summary_row(line: str) -> OpTypeRow | None:
    # [Node type] [count] [avg ms] [avg %] [cdf %] [mem KB] [times called]
    parts = _split_row(line, 7)
    if parts is None:
        return None
    try:
        return OpTypeRow(op_type=parts[0], count=int(parts[1]), avg_ms=float(parts[2]),
                         percent=float(parts[3].rstrip("%")))
    except ValueError:
        return None


# --- onnxruntime_perf_test ----------------------------------------------------------------------------

_PT_AVERAGE = re.compile(rf"Average (?:inference )?time cost(?: total)?\s*:\s*({_NUM})\s*ms")
_PT_SESSION = re.compile(rf"Session creation time cost\s*:\s*({_NUM})\s*s\b")
_PT_FIRST = re.compile(rf"First inference time cost\s*:\s*({_NUM})\s*ms")
_PT_COUNT = re.compile(r"(?:Total inference requests|Total iterations|Runs)\s*:\s*(\d+)")
_PT_PEAK = re.compile(r"Peak working set size\s*:\s*(\d+)")
_PT_VERSION = re.compile(r"onnxruntime(?:_perf_test)? version\s*:?\s*v?(\d+\.\d+\.\d+)", re.IGNORECASE)


def _pt_latency(label: str, text: str) -> float | None:
    m = re.search(rf"{label} Latency(?::| is)\s*({_NUM})\s*(?:s|sec)\b", text)
    return float(m.group(1)) * 1e3 if m else None


def parse_perf_test_output(text: str) -> ParsedBenchmark:
    """Parse what ONNX Runtime's ``onnxruntime_perf_test`` printed.

    In: the tool's stdout+stderr (any version since 2019: ``Average inference time cost: X ms``, the
    newer ``Average inference time cost total: X ms``, ``Session creation time cost``, ``First
    inference time cost``, and with ``-s`` the ``Min/Max/P50/P90 Latency: X s`` or ``... is X sec`` lines).
    Out: ``ParsedBenchmark`` with mean, count, init (session creation), first, min, max, median (P50)
    and p90 where printed, and the peak working set as ``memory.overall_mb`` (MiB).
    Raises ``UnparsableOutputError`` quoting the output's tail when there is no average time line.
    """
    average = _PT_AVERAGE.search(text)
    if average is None:
        raise _unparsable("onnxruntime_perf_test", "'Average inference time cost' line", text)
    session = _PT_SESSION.search(text)
    first = _PT_FIRST.search(text)
    counts = _PT_COUNT.findall(text)
    peak = _PT_PEAK.search(text)
    latency = LatencyStats(
        count=int(counts[0]) if counts else 0,
        mean_ms=float(average.group(1)),
        median_ms=_pt_latency("P50", text),
        p90_ms=_pt_latency("P90", text),
        min_ms=_pt_latency("Min", text),
        max_ms=_pt_latency("Max", text),
        init_ms=float(session.group(1)) * 1e3 if session else None,
        first_ms=float(first.group(1)) if first else None,
    )
    memory = MemoryStats(overall_mb=int(peak.group(1)) / 2**20) if peak else None
    version = _PT_VERSION.search(text)
    return ParsedBenchmark(latency, memory, tool_version=version.group(1) if version else None)


# --- ONNX Runtime profile trace -----------------------------------------------------------------------


def parse_ort_profile(trace: str, *, skip_runs: int = 0) -> tuple[list[OpProfileRow], list[OpTypeRow]]:
    """Per-op times from an ONNX Runtime profile (``SessionOptions.enable_profiling`` or perf_test ``-p``).

    In: the JSON text of the trace (a list of Chrome-trace events); ``skip_runs`` ``model_run`` events to
    ignore at the start (warm-up). Out: ``(run order rows, per-op-type summary)``: each node's mean
    ``*_kernel_time`` duration over the counted runs in ms, in the order the nodes first ran, and the per
    type totals slowest first. Raises ``UnparsableOutputError`` for text that is not such a trace or has
    no node events.
    """
    try:
        events = json.loads(trace)
    except ValueError as exc:
        raise UnparsableOutputError(f"ONNX Runtime profile is not JSON ({exc}): {output_tail(trace)!r}") from None
    if isinstance(events, dict):
        events = events.get("traceEvents", [])
    if not isinstance(events, list):
        raise UnparsableOutputError(f"ONNX Runtime profile is not an event list: {output_tail(trace)!r}")
    runs = sorted(e.get("ts", 0) for e in events if isinstance(e, dict) and e.get("name") == "model_run")
    after = runs[skip_runs] if 0 < skip_runs < len(runs) else None
    counted = max(len(runs) - skip_runs, 1) if runs else 1
    totals: dict[str, float] = {}
    types: dict[str, str] = {}
    order: list[str] = []
    for event in events:
        if not isinstance(event, dict) or event.get("cat") != "Node":
            continue
        name = str(event.get("name", ""))
        if not name.endswith("_kernel_time") or (after is not None and event.get("ts", 0) < after):
            continue
        node = name[: -len("_kernel_time")]
        if node not in totals:
            order.append(node)
            totals[node] = 0.0
            types[node] = str(event.get("args", {}).get("op_name", "?"))
        totals[node] += float(event.get("dur", 0)) / 1e3
    if not order:
        raise UnparsableOutputError(f"ONNX Runtime profile has no node events: {output_tail(trace)!r}")
    total = sum(totals.values()) or 1.0
    rows = [
        OpProfileRow(index=i, op_type=types[n], name=n, avg_ms=totals[n] / counted,
                     percent=100.0 * totals[n] / total)
        for i, n in enumerate(order)
    ]
    return rows, summarize_op_types(rows)


def summarize_op_types(rows: list[OpProfileRow]) -> list[OpTypeRow]:
    """Per-op-type count and summed average time of run-order rows, slowest type first."""
    count: dict[str, int] = defaultdict(int)
    time_ms: dict[str, float] = defaultdict(float)
    for row in rows:
        count[row.op_type] += 1
        time_ms[row.op_type] += row.avg_ms
    total = sum(time_ms.values()) or 1.0
    return sorted(
        (OpTypeRow(t, count[t], time_ms[t], 100.0 * time_ms[t] / total) for t in count),
        key=lambda r: (-r.avg_ms, r.op_type),
    )


# --- edgekit device runner ----------------------------------------------------------------------------


def parse_runner_output(text: str) -> tuple[ParsedBenchmark, dict]:
    """Parse the one JSON document ``edgekit.android_bench.device_runner`` prints (its last line).

    Out: ``(ParsedBenchmark, the whole document as a dict)``. Raises ``UnparsableOutputError`` when no
    line parses as the runner's JSON or the runner reported an error (its message is quoted).
    """
    document = None
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                document = json.loads(line)
                break
            except ValueError:
                continue
    if not isinstance(document, dict) or document.get("tool") != "edgekit-runner":
        raise _unparsable("edgekit device runner", "result JSON", text)
    if document.get("error"):
        raise UnparsableOutputError(f"edgekit device runner failed: {document['error']}")
    try:
        latency = LatencyStats(**document["latency"])
        memory = MemoryStats(**document["memory"]) if document.get("memory") else None
        ops = [OpProfileRow(**row) for row in document.get("op_profile", [])]
        summary = [OpTypeRow(**row) for row in document.get("op_type_summary", [])]
    except (KeyError, TypeError) as exc:
        raise UnparsableOutputError(
            f"edgekit device runner JSON does not fit the BenchRun schema ({exc}): {output_tail(text)!r}"
        ) from None
    return ParsedBenchmark(latency, memory, ops, [], summary, document.get("tool_version")), document
