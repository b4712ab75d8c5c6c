"""Parsers of benchmark tools' output: pure functions from the text a tool printed to result dataclasses.

Covered: TFLite's ``benchmark_model`` (every output generation from 2018's ``Average inference timings in
us: Warmup: ..., Init: ..., no stats: ...`` to today's ``Inference timings in us: Init: ..., First
inference: ..., Warmup (avg): ..., Inference (avg): ...`` with ``p5= median= p95=``, native, through
logcat, with or without the ``INFO: `` prefix TensorFlow 2.10 put on every line), LiteRT's
``benchmark_model`` (``benchmark_litert_model``, with its ``BENCHMARK RESULTS`` summary in ms), ONNX
Runtime's ``onnxruntime_perf_test`` (``Average inference time cost[ total]: X ms``, ``P50 Latency: X s``
and ``P50 Latency is X sec``), ONNX Runtime's JSON profile trace, and the JSON document edgekit's own
device runner prints. Times come out in milliseconds, memory in MiB.

Output that carries no latency is an ``UnparsableOutputError`` that quotes the end of what the tool
printed; a missing value is None, never zero.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from edgekit.android_bench.results import LatencyStats, MemoryStats, OpProfileRow, OpTypeRow
from edgekit.errors import EdgekitError
from edgekit.op_profile import summarize_op_types

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

# What a line can carry before the tool's own text, in the order the layers nest: logcat (brief
# "I tflite  : " or threadtime "07-14 13:14:52.097 22838 22838 I tflite  : "), absl
# ("I0000 00:00:1758455104.504065   62590 accelerator_registry.cc:51] "), the severity every line has
# carried since TensorFlow 2.10 ("INFO: ", "VERBOSE: ") and LiteRT's source location
# ("[./litert/tools/benchmark_litert_model.h:82] "). Leading blanks go only together with a prefix, so
# the op tables keep their indentation.
_LINE_PREFIX = re.compile(
    r"^[ \t]*(?:"
    r"(?:\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+)?[VDIWEF][ /][\w.-]+\s*(?:\(\s*\d+\))?:\s?"
    r"|[VDIWEF]\d{4} [\d:.]+\s+\d+ [^\s\]]+:\d+\]\s?"
    r"|(?:VERBOSE|DEBUG|INFO|WARNING|ERROR):\s?"
    r"|\[[^\s\]]+:\d+\]\s?"
    r")+"
)
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
# LiteRT's benchmark (the CompiledModel tool, ``benchmark_litert_model``) prints its own summary in ms
# after "BENCHMARK RESULTS", e.g. "Inference (avg):      0.46 ms (2112 runs)" and "Inference (std):      0.01"
# (ms, printed without the unit), and memory in MB ("Init footprint:", "Overall footprint:", "Peak memory:").
_LITERT_FIELD = re.compile(
    rf"^(Model initialization|Warmup \(first\)|Warmup \(avg\)|Inference \((?:avg|min|max|std|median|p5|p95)\)"
    rf"|Init footprint|Overall footprint|Peak memory):\s*({_NUM})(?:\s*(?:ms|MB))?(?:\s*\((\d+) runs\))?\s*$",
    re.MULTILINE,
)
_MEMORY = re.compile(
    rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*"
    rf"init=({_NUM})\s+overall=({_NUM})"
)
_PEAK_POLLED = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({_NUM})")
_SESSION = re.compile(rf"Initialized session in ({_NUM})\s*ms")
_TIMINGS_LINE = re.compile(r"^Timings \(microseconds\):\s*(count=.*)$")
_SECTION = re.compile(r"^=+\s*(Run Order|Top by Computation Time|Summary by node type)\s*=+$")
_REGULAR_PROFILE = "Operator-wise Profiling Info for Regular Benchmark Runs"


def _lines(text: str) -> list[str]:
    """The tool's lines without log prefixes or trailing whitespace."""
    return [_LINE_PREFIX.sub("", line.rstrip("\r\n"), count=1).rstrip() for line in text.splitlines()]


def parse_benchmark_model_output(text: str) -> ParsedBenchmark:
    """Parse what TFLite's or LiteRT's ``benchmark_model`` (or the Android app, via logcat) printed.

    In: the tool's whole stdout+stderr, with or without log prefixes (``INFO: ``, absl ``I0000 ...] ``,
    LiteRT's ``[file:line] ``, logcat). Out: ``ParsedBenchmark`` with latency (init, first, warm-up mean,
    mean, and from the regular-run ``count=`` line count/min/max/std plus median/p5/p95 where the tool
    prints them), memory (``init``/``overall`` MB) when printed, and with ``--enable_op_profiling`` (or
    LiteRT's ``--use_profiler``) the run-order table, the top ops and the summary by node type of the
    regular runs. Each figure comes from the most precise line that carries it: TFLite's us summary and
    ``count=`` lines first, LiteRT's two-decimal ms summary only for what they lack (its only figures when
    that is all that was printed).
    Raises ``UnparsableOutputError`` (message quotes the output's tail) when neither a timings summary
    nor a regular-run ``count=`` line is present, e.g. after ``Benchmarking failed.`` or a crash.
    """
    lines = _lines(text)
    stripped = [line.strip() for line in lines]
    count_lines = [_count_fields(line) for line in stripped if _COUNT_LINE.match(line)]
    profile_timings = [_count_fields(m.group(1)) for m in map(_TIMINGS_LINE.match, stripped) if m]

    joined = "\n".join(stripped)
    new = _NEW_SUMMARY.search(joined)
    old = _OLD_SUMMARY.search(joined)
    litert, litert_runs = _litert_summary(joined)
    # The regular runs are reported by the last standalone count= line that has first=; the one before
    # it (or a "count=1 curr=" line) is the warm-up.
    regular = next((c for c in reversed(count_lines) if "first" in c), None)
    if regular is None and profile_timings:
        regular = profile_timings[-1]
    if new is None and old is None and regular is None and "Inference (avg)" not in litert:
        raise _unparsable("benchmark_model", "latency figures (no 'Inference timings' or 'count=' line)", text)
    if regular is None and "Inference (avg)" not in litert_runs:
        raise _unparsable("benchmark_model", "regular-run 'count=' line (output truncated?)", text)

    us = 1e-3
    summary: dict[str, float] = {}
    if new:
        summary = dict(zip(("init", "first", "warmup", "mean"), (float(g) * us for g in new.groups()), strict=True))
    elif old:
        summary = dict(zip(("warmup", "init", "mean"), (float(g) * us for g in old.groups()), strict=True))
    warm = count_lines[0] if len(count_lines) >= 2 else None
    session = _SESSION.search(joined)
    latency = LatencyStats(
        count=int(regular["count"]) if regular else litert_runs["Inference (avg)"],
        mean_ms=_first(summary.get("mean"), _get(regular, "avg", us), litert.get("Inference (avg)")),
        median_ms=_first(_get(regular, "median", us), litert.get("Inference (median)")),
        min_ms=_first(_get(regular, "min", us), litert.get("Inference (min)")),
        max_ms=_first(_get(regular, "max", us), litert.get("Inference (max)")),
        std_ms=_first(_get(regular, "std", us), litert.get("Inference (std)")),
        init_ms=_first(summary.get("init"), float(session.group(1)) if session else None,
                       litert.get("Model initialization")),
        # Older tools print no "First inference"; the first warm-up run is the first inference.
        first_ms=_first(summary.get("first"), _get(warm, "first", us),
                        _get(warm, "curr", us) if warm and warm.get("count") == 1 else None,
                        litert.get("Warmup (first)")),
        warmup_ms=_first(summary.get("warmup"), _get(warm, "avg", us), litert.get("Warmup (avg)")),
        p5_ms=_first(_get(regular, "p5", us), litert.get("Inference (p5)")),
        p95_ms=_first(_get(regular, "p95", us), litert.get("Inference (p95)")),
    )

    mem = _MEMORY.search(joined)
    polled = _PEAK_POLLED.search(joined)
    init_mb = _first(float(mem.group(1)) if mem else None, litert.get("Init footprint"))
    overall_mb = _first(float(polled.group(1)) if polled else None, litert.get("Peak memory"),
                        float(mem.group(2)) if mem else None, litert.get("Overall footprint"))
    memory = MemoryStats(init_mb, overall_mb) if init_mb is not None or overall_mb is not None else None

    op_profile, top_ops, op_types = _parse_op_tables(lines)
    return ParsedBenchmark(latency, memory, op_profile, top_ops, op_types)


def _litert_summary(joined: str) -> tuple[dict[str, float], dict[str, int]]:
    """LiteRT's "BENCHMARK RESULTS" block: each figure (ms or MB) by its label, and the run counts."""
    values: dict[str, float] = {}
    runs: dict[str, int] = {}
    for label, value, count in _LITERT_FIELD.findall(joined):
        values[label] = float(value)
        if count:
            runs[label] = int(count)
    return values, runs


def _count_fields(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in _KV.findall(line)}


def _get(fields: dict[str, float] | None, key: str, scale: float) -> float | None:
    if fields is None or key not in fields:
        return None
    return fields[key] * scale


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


# A table's columns are read from its header ("[node type]  [start]  [first]  [avg ms]  [%] ..."): the
# run-order and top tables of older tools have a [start] column, current TFLite and LiteRT drop it.
_HEADER_COLUMN = re.compile(r"\[([^\]]+)\]")


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
    columns: list[str] = []
    for line in lines[start:]:
        stripped = line.strip()
        header = _SECTION.match(stripped)
        if header:
            section, columns = header.group(1), []
            continue
        if section is None or not stripped:
            continue
        if stripped.startswith("["):
            columns = _HEADER_COLUMN.findall(stripped)
            continue
        row = _table_row(stripped, columns)
        if row is None:
            section = None
            continue
        op_type, values, name = row
        if section == "Summary by node type":
            summary.append(OpTypeRow(op_type=op_type, count=int(values["count"]), avg_ms=values["avg ms"],
                                     percent=values.get("avg %")))
            continue
        rows = run_order if section == "Run Order" else top
        rows.append(OpProfileRow(index=len(rows), op_type=op_type, name=_node_name(name),
                                 avg_ms=values["avg ms"], percent=values.get("%")))
    return run_order, top, summary


def _table_row(line: str, columns: list[str]) -> tuple[str, dict[str, float], str] | None:
    """One table row split by its header: ``(node type, numeric columns by name, name)``, or None.

    The node type comes first and may hold blanks ("Convolution (NHWC, QC8) GEMM"), the numeric columns
    follow, the node name (which may hold blanks too) ends the row; tabs or runs of blanks separate them.
    """
    named = bool(columns) and columns[-1] == "Name"
    numeric = columns[1:-1] if named else columns[1:]
    needed = {"avg ms"} if named else {"avg ms", "count"}  # an op row, or a per-type summary row
    if not needed <= set(numeric):
        return None
    m = re.fullmatch(rf"(.+?)\s+((?:{_NUM}%?\s+){{{len(numeric) - 1}}}{_NUM}%?)(?:\s+(.*))?", line)
    if m is None:
        return None
    values = {col: float(v.rstrip("%")) for col, v in zip(numeric, m.group(2).split(), strict=True)}
    return m.group(1), values, m.group(3) or ""


def _node_name(name: str) -> str:
    """A node name without the tool's ":<node index>" suffix and the brackets around TFLite op names."""
    name = re.sub(r":\d+$", "", name).strip()
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


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
