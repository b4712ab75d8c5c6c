"""ONNX Runtime latency of edgekit's int8 QDQ export against its fp32 export, interleaved in one process.

    python benchmarks/onnx_int8_latency.py [--model shufflenet_v2_x1_0] [--rounds 7] [--runs 30]

Exports both files into a temporary folder (no parity check), then alternates rounds of ``--runs``
timed single-image inferences per file at 1 and 2 threads, so drift from other load hits both alike.
Prints the median per-image milliseconds and each int8 file's speed-up over fp32: edgekit's default int8
(pixel input with its float Pad/Mul/Add prologue, equalization, GPTQ, bias correction) and plain
post-training quantization of the same graph (``int8-plain``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from edgekit.export import export_onnx
from edgekit.export.onnx_int8 import export_onnx_int8
from edgekit.runtimes import open_runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shufflenet_v2_x1_0")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--calib-method", default="percentile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(args.model, output_dir=tmp, check=False)
        int8 = export_onnx_int8(args.model, output_dir=tmp, check=False, calib_method=args.calib_method)
        plain = export_onnx_int8(args.model, output_dir=f"{tmp}/plain", check=False, calib_method=args.calib_method,
                                 equalize=False, optimal_rounding=False, bias_correction=False,
                                 fold_normalization=False, input_kind="normalized")
        x = np.random.default_rng(0).standard_normal(fp32.input_shape).astype(np.float32)
        for threads in (1, 2):
            runtimes = {"fp32": open_runtime(fp32.path, threads=threads),
                        "int8": open_runtime(int8.path, threads=threads),
                        "int8-plain": open_runtime(plain.path, threads=threads)}
            times: dict[str, list[float]] = {k: [] for k in runtimes}
            for rt in runtimes.values():
                for _ in range(5):
                    rt.run(x)
            for _ in range(args.rounds):
                for name, rt in runtimes.items():
                    start = time.perf_counter()
                    for _ in range(args.runs):
                        rt.run(x)
                    times[name].append((time.perf_counter() - start) / args.runs * 1e3)
            for rt in runtimes.values():
                rt.close()
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{args.model} threads={threads}: fp32 {med['fp32']:.2f} ms, int8 {med['int8']:.2f} ms "
                  f"(speed-up {med['fp32'] / med['int8']:.2f}x), int8-plain {med['int8-plain']:.2f} ms "
                  f"(speed-up {med['fp32'] / med['int8-plain']:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
