"""litert-torch: an edgekit registry model (same weights) to fp32 and PT2E int8 .tflite.

Runs in the litert-torch environment made by build_peers.py, with the repository on PYTHONPATH only so
that ``edgekit.models`` (torch, numpy and Pillow imports, all in that environment) provides the architecture:
the registry's builder named by the inputs' ``model`` (ShuffleNetV2 1.0x when absent, as build_peers.py
writes them; benchmarks/peers/zoo_peers.py names any zoo model). Follows
litert-torch's documented paths: ``litert_torch.convert(model, args).export(path)`` for fp32; for int8,
``torch.export`` -> torchao ``prepare_pt2e`` with litert-torch's ``PT2EQuantizer`` (symmetric, per-channel,
static) -> calibration -> ``convert_pt2e(fold_quantize=False)`` -> ``convert(..., quant_config=...)``.
Writes a result JSON that build_peers.py folds into the manifest.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import numpy as np
import torch

DEFAULT_MODEL = "shufflenet_v2_x1_0"


def build_model(state_dict_path: str, name: str = DEFAULT_MODEL) -> torch.nn.Module:
    """The registry's architecture ``name`` with the weights of ``state_dict_path`` (strict), in eval mode."""
    import edgekit.models  # noqa: F401  importing the families fills the registry
    from edgekit.models.registry import build_architecture

    model = build_architecture(name)
    model.load_state_dict(torch.load(state_dict_path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def convert_fp32(model, sample, path: Path) -> None:
    import litert_torch

    litert_torch.convert(model, (sample,)).export(str(path))


def convert_int8(model, sample, calib: np.ndarray, path: Path) -> None:
    import litert_torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    # exported from an eval-mode model, so batch norm is already in its inference form; litert-torch still
    # warns "converted in training mode" because the exported GraphModule's nn.Module.training stays True
    exported = move_exported_model_to_eval(torch.export.export(model, (sample,)).module())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for image in calib:
            prepared(torch.from_numpy(image[None]))
    quantized = convert_pt2e(prepared, fold_quantize=False)
    litert_torch.convert(quantized, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", required=True, help="JSON from build_peers.prepare_inputs")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    inputs = json.loads(args.inputs)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"models": [], "errors": []}

    name = inputs.get("model", DEFAULT_MODEL)
    model = build_model(inputs["state_dict"], name)
    calib = np.load(inputs["calib_nchw"])
    sample = torch.from_numpy(calib[:1].copy())
    jobs = [("fp32", lambda p: convert_fp32(model, sample, p)),
            ("int8", lambda p: convert_int8(model, sample, calib, p))]
    wanted = inputs.get("precisions", ["fp32", "int8"])
    for precision, job in [j for j in jobs if j[0] in wanted]:
        path = out_dir / f"{name}_{precision}.tflite"
        path.unlink(missing_ok=True)
        start = time.perf_counter()
        try:
            job(path)
        except Exception as exc:  # noqa: BLE001  record and go on to the other precision
            traceback.print_exc()
            result["errors"].append(f"{precision}: {type(exc).__name__}: {str(exc).strip()[:300]}")
            continue
        route = "litert_torch.convert" if precision == "fp32" else (
            f"PT2E static per-channel, {len(calib)} calibration images ({inputs['calibration']})")
        result["models"].append({"precision": precision, "path": str(path), "route": route,
                                 "conversion_seconds": round(time.perf_counter() - start, 1)})
        Path(args.result).write_text(json.dumps(result))
    Path(args.result).write_text(json.dumps(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
