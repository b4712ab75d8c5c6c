"""ONNX int8 quality per calibration method and weight range, on the trained digits reference and 1.0x.

    python benchmarks/onnx_int8_quality.py [--models shufflenet_v2_digits,shufflenet_v2_x1_0]

For each model, method (minmax, percentile, mse: edgekit's range estimator, shared with TFLite;
``--percentile`` sets the percentile) and reduce_range (False, True) it quantizes the fp32 export with
``edgekit.export.onnx_int8`` and prints, against PyTorch fp32: mean cosine of the logits with the real
integer kernels and with the QDQ graph simulated in float (optimizations off), their top-1 agreement, and
for the digits model the held-out top-1 accuracy. Calibration: 100 training digits, or 100 bundled crops
(seed 1); evaluation: the 600 held-out digits, or 200 bundled crops (seed 0).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import onnx

from edgekit.check import compare_outputs
from edgekit.data import bundled_images, preprocess
from edgekit.data.digits import digits_images
from edgekit.export.activation_ranges import DEFAULT_PERCENTILE
from edgekit.export.onnx_export import simplify, torch_to_onnx
from edgekit.export.onnx_int8 import CALIB_METHODS, INT8_SHUFFLE_LOWERING, calibration_inputs, quantize_onnx_model
from edgekit.export.passes import apply_shuffle_passes
from edgekit.models import resolve
from edgekit.runtimes import open_runtime


def run(path: str, x: np.ndarray, optimization: str) -> np.ndarray:
    with open_runtime(path, threads=2, optimization=optimization) as rt:
        return np.concatenate([rt.run(x[i : i + 1])[0] for i in range(len(x))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="shufflenet_v2_digits,shufflenet_v2_x1_0")
    parser.add_argument("--methods", default=",".join(CALIB_METHODS))
    parser.add_argument("--activations", default="uint8", choices=["uint8", "int8"])
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE)
    args = parser.parse_args()
    for name in args.models.split(","):
        handle = resolve(name)
        _, c, h, w = handle.input_shape
        if name == "shufflenet_v2_digits":
            images, labels = digits_images("heldout", (h, w))
            calib = "digits"
        else:
            images, labels = bundled_images(200, size=(h, w), seed=0), None
            calib = 100
        x = preprocess(images, handle.mean, handle.std, c)
        with open_runtime(handle, threads=2) as rt:
            ref = rt.run(x)[0]
        fp32 = simplify(torch_to_onnx(handle.module, handle.input_shape, 17))
        fp32, _, _ = apply_shuffle_passes(fp32, INT8_SHUFFLE_LOWERING)
        cal, desc = calibration_inputs(calib, handle)
        print(f"{name}: eval on {len(x)} images, calibration on {desc}"
              + (f"; fp32 top-1 {100 * np.mean(ref.argmax(1) == labels):.2f}%" if labels is not None else ""))
        with tempfile.TemporaryDirectory() as tmp:
            for method in args.methods.split(","):
                for reduce_range in (False, True):
                    start = time.perf_counter()
                    q = quantize_onnx_model(fp32, cal, method=method, reduce_range=reduce_range,
                                            activation_type=args.activations, percentile=args.percentile)
                    path = os.path.join(tmp, f"{method}_{reduce_range}.onnx")
                    onnx.save(q, path)
                    real, sim = run(path, x, "all"), run(path, x, "disable")
                    pr, ps = compare_outputs("logits", ref, real), compare_outputs("logits", ref, sim)
                    kern = compare_outputs("logits", sim, real)
                    line = (f"  {method:10s} reduce_range={reduce_range!s:5s} cosine real {pr.cosine:.5f} "
                            f"simulated {ps.cosine:.5f} kernels-vs-simulated {kern.cosine:.6f} "
                            f"top-1 agreement {100 * pr.top1_agreement:.2f}%")
                    if labels is not None:
                        line += f" top-1 {100 * np.mean(real.argmax(1) == labels):.2f}%"
                    print(line + f" ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
