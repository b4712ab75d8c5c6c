#!/usr/bin/env python3
"""edgekit's device-side benchmark runner: times one model with LiteRT or ONNX Runtime, prints one JSON line.

Used where no benchmark binary exists (an ARM board with Python, an emulated arm64 root). Standalone on
purpose: it needs only Python 3.8+, numpy, and ai_edge_litert (or tflite_runtime) or onnxruntime, and never
imports edgekit. Its JSON holds the BenchRun schema's ``latency``/``memory``/``op_profile``/
``op_type_summary`` fields (milliseconds, MiB) plus ``tool``, ``tool_version``, ``runtime`` and ``outputs``.

    python3 device_runner.py MODEL [--threads N] [--accelerator cpu|xnnpack] [--runs N] [--min-secs S]
                             [--warmup N] [--max-secs S] [--op-profile] [--input-npy F] [--output-npy F]

Input is seeded uniform noise for every model input, the first (the image) replaced by ``--input-npy`` (in the
model's own layout) when given; ``--output-npy``
saves the first output of the first run (for cross-architecture parity). Exit status 0 with the JSON on
stdout; on failure exit 1 with ``{"tool": "edgekit-runner", "error": "..."}`` as the last stdout line.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

RUNNER_VERSION = "1"


def _memory_mb():
    """(VmRSS, VmHWM) of this process in MiB from /proc/self/status; (None, None) where unavailable."""
    values = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024.0
    except OSError:
        pass
    return values.get("VmRSS"), values.get("VmHWM")


def _percentile(sorted_values, q):
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_stats(times_ms, init_ms, first_ms, warmup_ms):
    """The BenchRun ``latency`` dict from the timed runs (ms)."""
    ordered = sorted(times_ms)
    return {
        "count": len(times_ms),
        "mean_ms": statistics.fmean(times_ms),
        "median_ms": statistics.median(times_ms),
        "p90_ms": _percentile(ordered, 0.9),
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
        "std_ms": statistics.pstdev(times_ms) if len(times_ms) > 1 else 0.0,
        "init_ms": init_ms,
        "first_ms": first_ms,
        "warmup_ms": warmup_ms,
    }


def _noise(np, rng, shape, dtype):
    """Seeded values for one input: every code of an integer type, uniform in [-1, 1] for floats."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


class _Tflite:
    def __init__(self, path, threads, accelerator, np):
        try:
            import ai_edge_litert as package
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:
            import tflite_runtime as package
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        self.np = np
        self.runtime = "{} {}".format(package.__name__.replace("_", "-"), getattr(package, "__version__", "?"))
        resolver = OpResolverType.AUTO if accelerator == "xnnpack" else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.interpreter = Interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=resolver)
        self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]

    def make_inputs(self, rng):
        return [_noise(self.np, rng, [max(int(d), 1) for d in i["shape"]], self.np.dtype(i["dtype"]))
                for i in self.inputs]

    def run(self, xs):
        for detail, x in zip(self.inputs, xs):  # noqa: B905 (Python 3.8 on devices: no strict=)
            self.interpreter.set_tensor(detail["index"], x)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i) for i in self.outputs]


class _Onnx:
    def __init__(self, path, threads, accelerator, np, profile_dir=None):
        import onnxruntime as ort

        self.np = np
        self.runtime = f"onnxruntime {ort.__version__}"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if profile_dir is not None:
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(profile_dir, "ort_profile")
        providers = ["XnnpackExecutionProvider", "CPUExecutionProvider"] if accelerator == "xnnpack" else [
            "CPUExecutionProvider"]
        self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        self.inputs = self.session.get_inputs()

    def make_inputs(self, rng):
        xs = []
        for i in self.inputs:
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
            kind = i.type
            dtype = (self.np.uint8 if "uint8" in kind else self.np.int8) if "int8" in kind else self.np.float32
            xs.append(_noise(self.np, rng, shape, self.np.dtype(dtype)))
        return xs

    def run(self, xs):
        return self.session.run(None, {i.name: x for i, x in zip(self.inputs, xs)})  # noqa: B905

    def end_profiling(self):
        return self.session.end_profiling()


def ort_op_profile(trace_events, skip_runs):
    """Run-order rows and per-type summary from ORT trace events (same rules as edgekit's parser)."""
    runs = sorted(e.get("ts", 0) for e in trace_events if e.get("name") == "model_run")
    after = runs[skip_runs] if 0 < skip_runs < len(runs) else None
    counted = max(len(runs) - skip_runs, 1) if runs else 1
    totals, types, order = {}, {}, []
    for event in trace_events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        if after is not None and event.get("ts", 0) < after:
            continue
        node = name[: -len("_kernel_time")]
        if node not in totals:
            order.append(node)
            totals[node] = 0.0
            types[node] = str(event.get("args", {}).get("op_name", "?"))
        totals[node] += float(event.get("dur", 0)) / 1e3
    total = sum(totals.values()) or 1.0
    rows = [{"index": i, "op_type": types[n], "name": n, "avg_ms": totals[n] / counted,
             "percent": 100.0 * totals[n] / total} for i, n in enumerate(order)]
    by_type = {}
    for row in rows:
        count, ms = by_type.get(row["op_type"], (0, 0.0))
        by_type[row["op_type"]] = (count + 1, ms + row["avg_ms"])
    type_total = sum(ms for _, ms in by_type.values()) or 1.0
    summary = [{"op_type": t, "count": c, "avg_ms": ms, "percent": 100.0 * ms / type_total}
               for t, (c, ms) in sorted(by_type.items(), key=lambda kv: (-kv[1][1], kv[0]))]
    return rows, summary


def measure(args):
    import numpy as np

    suffix = os.path.splitext(args.model)[1].lower()
    if suffix not in (".tflite", ".onnx"):
        raise ValueError(f"unknown model type {suffix!r} (need .tflite or .onnx)")
    profile_dir = tempfile.mkdtemp(prefix="edgekit-profile-") if (args.op_profile and suffix == ".onnx") else None
    rss_before, _ = _memory_mb()
    start = time.perf_counter()
    if suffix == ".tflite":
        engine = _Tflite(args.model, args.threads, args.accelerator, np)
    else:
        engine = _Onnx(args.model, args.threads, args.accelerator, np, profile_dir)
    init_ms = (time.perf_counter() - start) * 1e3
    rss_after, _ = _memory_mb()

    rng = np.random.default_rng(args.seed)
    x = engine.make_inputs(rng)  # one array per input; --input-npy replaces the first (the image)
    if args.input_npy:
        x[0] = np.load(args.input_npy)

    start = time.perf_counter()
    outputs = engine.run(x)
    first_ms = (time.perf_counter() - start) * 1e3
    if args.output_npy:
        np.save(args.output_npy, np.asarray(outputs[0]))
    warm = []
    for _ in range(args.warmup):
        start = time.perf_counter()
        engine.run(x)
        warm.append((time.perf_counter() - start) * 1e3)

    times = []
    began = time.perf_counter()
    truncated = False
    while len(times) < args.runs or time.perf_counter() - began < args.min_secs:
        if args.max_secs and time.perf_counter() - began > args.max_secs and times:
            truncated = True
            break
        start = time.perf_counter()
        engine.run(x)
        times.append((time.perf_counter() - start) * 1e3)
    _, peak = _memory_mb()

    op_profile, op_types = [], []
    if profile_dir is not None:
        with open(engine.end_profiling()) as trace:
            events = json.load(trace)
        # The first run and the warm-up runs are left out, as benchmark_model leaves them out.
        op_profile, op_types = ort_op_profile(events, 1 + args.warmup)

    return {
        "tool": "edgekit-runner",
        "tool_version": RUNNER_VERSION,
        "runtime": engine.runtime,
        "accelerator": args.accelerator,
        "threads": args.threads,
        "truncated": truncated,
        "latency": latency_stats(times, init_ms, first_ms, statistics.fmean(warm) if warm else None),
        "memory": {
            "init_mb": (rss_after - rss_before) if rss_after is not None and rss_before is not None else None,
            "overall_mb": peak,
        },
        "op_profile": op_profile,
        "op_type_summary": op_types,
        "outputs": [{"shape": list(np.shape(o)), "dtype": str(np.asarray(o).dtype)} for o in outputs],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--accelerator", choices=["cpu", "xnnpack"], default="cpu")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--min-secs", type=float, default=0.0)
    parser.add_argument("--max-secs", type=float, default=0.0, help="stop timing after this long (0: never)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--op-profile", action="store_true")
    parser.add_argument("--input-npy")
    parser.add_argument("--output-npy")
    args = parser.parse_args(argv)
    try:
        result = measure(args)
    except Exception as exc:  # one JSON line is the contract, whatever went wrong
        print(json.dumps({"tool": "edgekit-runner", "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
