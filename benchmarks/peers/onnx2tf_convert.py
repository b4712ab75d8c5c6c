"""onnx2tf: the plain ONNX export of edgekit's ShuffleNetV2 1.0x to fp32 and full-integer int8 .tflite.

Runs in the onnx2tf environment made by build_peers.py, in a scratch working directory: onnx2tf rewrites
its input file in place (so it gets a copy), and looks for its calibration file
``calibration_image_sample_data_20x128x128x3_float32.npy`` in the working directory before trying GitHub
(unreachable here), so build_peers.py's copy is put there: the crops edgekit's --int8 calibrates on, in
[0, 1], which onnx2tf normalises with the model's mean/std exactly as edgekit's preprocessing does. One
onnx2tf run writes fp32 and int8 (full-integer, int8 input and output); its time covers both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import traceback
from pathlib import Path

STEM = "shufflenet_v2_x1_0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", required=True, help="JSON from build_peers.prepare_inputs")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    inputs = json.loads(args.inputs)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path.cwd()
    onnx_path = work / f"{STEM}.onnx"
    shutil.copyfile(inputs["plain_onnx"], onnx_path)
    default_calib = Path(inputs["onnx2tf_default_calibration"])
    shutil.copyfile(default_calib, work / default_calib.name)
    result: dict = {"models": [], "errors": []}

    import onnx2tf

    converted = work / "converted"
    start = time.perf_counter()
    try:
        onnx2tf.convert(
            input_onnx_file_path=str(onnx_path),
            output_folder_path=str(converted),
            output_integer_quantized_tflite=True,
            quant_type="per-channel",
            quant_norm_mean=str([[[inputs["mean"]]]]),
            quant_norm_std=str([[[inputs["std"]]]]),
            input_quant_dtype="int8",
            output_quant_dtype="int8",
            verbosity="warn",
        )
    except BaseException as exc:  # noqa: BLE001  onnx2tf calls sys.exit on errors
        traceback.print_exc()
        result["errors"].append(f"onnx2tf.convert: {type(exc).__name__}: {str(exc).strip()[:300]}")
    seconds = round(time.perf_counter() - start, 1)
    wanted = {"fp32": f"{STEM}_float32.tflite", "int8": f"{STEM}_full_integer_quant.tflite"}
    for precision, name in wanted.items():
        produced = converted / name
        if not produced.exists():
            result["errors"].append(f"{precision}: onnx2tf wrote no {name}")
            continue
        target = out_dir / name
        shutil.copyfile(produced, target)
        route = "onnx2tf (TFLiteConverter)" if precision == "fp32" else (
            f"onnx2tf -oiqt full_integer_quant, per-channel, int8 io, {inputs['calibration']}")
        result["models"].append({"precision": precision, "path": str(target), "route": route,
                                 "conversion_seconds": seconds, "conversion_note": "one run for fp32 and int8"})
    Path(args.result).write_text(json.dumps(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
