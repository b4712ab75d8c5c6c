"""ONNX Runtime latency of edgekit's exports against a plain torch.onnx.export + onnxsim baseline.

Every variant is the same model with the same weights. Sessions are timed interleaved in one process
(round-robin, rotating the order every round) so machine noise hits all variants alike; the script prints
median latency per variant and its ratio to the baseline, at each thread count, plus a JSON line.

    python benchmarks/onnx_latency.py [--model shufflenet_v2_x1_0] [--threads 1,2] [--rounds 40]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import onnxsim
import torch

from edgekit.export.passes import SHUFFLE_LOWERINGS, apply_shuffle_passes
from edgekit.models import resolve
from edgekit.report import table


def baseline_onnx(module, shape) -> bytes:
    """What a user gets without edgekit: the TorchScript exporter at opset 17, then onnxsim."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(*shape),), buffer, dynamo=False, opset_version=17)
    simplified, ok = onnxsim.simplify(onnx.load_from_string(buffer.getvalue()))
    assert ok, "onnxsim could not verify the baseline"
    return simplified.SerializeToString()


def session(model_bytes: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def interleaved_medians(sessions: dict[str, ort.InferenceSession], x: np.ndarray, rounds: int, runs: int):
    names = list(sessions)
    feeds = {n: {sessions[n].get_inputs()[0].name: x} for n in names}
    for n in names:  # warm-up
        for _ in range(5):
            sessions[n].run(None, feeds[n])
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            for _ in range(runs):
                start = time.perf_counter()
                sessions[n].run(None, feeds[n])
                samples[n].append(time.perf_counter() - start)
    return {n: statistics.median(v) * 1e3 for n, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shufflenet_v2_x1_0")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    handle = resolve(args.model)
    base = baseline_onnx(handle.module, handle.input_shape)
    variants = {"baseline (torch.onnx + onnxsim)": base}
    for lowering in SHUFFLE_LOWERINGS:
        lowered, _, matches = apply_shuffle_passes(onnx.load_from_string(base), lowering)
        variants[f"edgekit --shuffle {lowering}"] = lowered.SerializeToString()
    x = np.random.default_rng(0).standard_normal(handle.input_shape).astype(np.float32)
    outputs = {}
    for name, model_bytes in variants.items():
        sess = session(model_bytes, 1)
        outputs[name] = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    reference = outputs["baseline (torch.onnx + onnxsim)"]
    rows, record = [], {"model": args.model, "onnxruntime": ort.__version__, "shuffles": len(matches), "results": []}
    for threads in [int(t) for t in args.threads.split(",")]:
        sessions = {n: session(b, threads) for n, b in variants.items()}
        medians = interleaved_medians(sessions, x, args.rounds, args.runs)
        base_ms = medians["baseline (torch.onnx + onnxsim)"]
        for name, ms in medians.items():
            max_diff = float(np.max(np.abs(outputs[name] - reference)))
            rows.append([name, threads, round(ms, 3), round(ms / base_ms, 3), max_diff])
            record["results"].append({"variant": name, "threads": threads, "median_ms": ms,
                                      "ratio_to_baseline": ms / base_ms, "max_abs_vs_baseline": max_diff})
    print(f"{args.model}: ONNX Runtime {ort.__version__}, {len(matches)} channel shuffles, "
          f"{args.rounds}x{args.runs} interleaved runs per variant and thread count")
    print(table(["variant", "threads", "median ms", "ratio", "max abs diff"], rows))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
