"""Export time of edgekit's int8 exports, as a ratio to the fp32 export of the same model, in one run.

    python benchmarks/export_time.py [--models shufflenet_v2_x1_0,resnet18] [--formats tflite,onnx]
                                     [--repeat 1] [--json FILE] [--no-peers]

For each model and format it runs edgekit's exporters (the real API, ``check=False``, so the time is the
export's, not the parity check's): fp32, then int8 with the defaults (equalization, GPTQ, bias correction,
percentile calibration on 100 images), ``--repeat`` times each, alternating, and prints the median seconds,
int8 / fp32, and the int8 export's per-step laps (``ExportResult.seconds``; TFLite's ``lower`` lap holds
equalization and GPTQ, ``quantize`` the calibration). Each export runs in a fresh Python process, timed from
its start to its exit, as ``edgekit export`` is (imports and the first torch export's warm-up included, which
is most of a small fp32 export); ``--warm`` runs them all in this process after one untimed export, which
shows the export work alone. Ratios are what to compare across runs: on a shared machine the absolute seconds
move with the load, and fp32 and int8 move together.

Models: ShuffleNetV2 1.0x from the registry, and ``resnet18`` (benchmarks/resnet18.py, a plain PyTorch
ResNet-18: ten times the weights, dense 3x3 convolutions up to 512 channels) with seeded, BatchNorm-calibrated
weights written once to a temporary state dict. Targets (issue "one int8 pipeline"): TFLite ShuffleNetV2 int8
at most 2x its fp32 export and 15 s; the ResNet-18, both formats, at most 3x and 60 s (a "!" marks a miss).

Peers, when their environments exist (``make bench-peers`` builds them under .bench-envs/): litert-torch's PT2E
int8 conversion (its fp32 conversion for the ratio) and onnx2tf's full-integer conversion (one run writes fp32
and int8) of the same module and weights, calibrated on the same 100 images; a missing peer is printed with
the reason and skipped. Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESNET_FACTORY = f"{HERE / 'resnet18.py'}:resnet18"
#: (model, format) -> (int8 / fp32 at most, int8 seconds at most), from the issue.
TARGETS = {("shufflenet_v2_x1_0", "tflite"): (2.0, 15.0), ("resnet18", "tflite"): (3.0, 60.0),
           ("resnet18", "onnx"): (3.0, 60.0)}
PEER_TIMEOUT_S = 1800


def model_kwargs(name: str, scratch: Path) -> dict:
    """Exporter arguments that name ``name``'s module and weights."""
    if name != "resnet18":
        return {"model": name}
    sys.path.insert(0, str(HERE))
    from resnet18 import resnet18

    from edgekit.models.handle import IMAGENET_MEAN, IMAGENET_STD
    from edgekit.models.weights import deterministic_init

    weights = scratch / "resnet18.pt"
    if not weights.exists():
        module = deterministic_init(resnet18(), (1, 3, 224, 224), IMAGENET_MEAN, IMAGENET_STD)
        torch.save(module.state_dict(), weights)
    return {"model": RESNET_FACTORY, "weights": str(weights), "input_shape": (1, 3, 224, 224)}


def export_once(fmt: str, int8: bool, kwargs: dict, out: Path):
    """One export; returns (seconds, laps). ONNX Runtime's quantizer prints its calibration chatter: dropped."""
    from edgekit.export.onnx_export import export_onnx
    from edgekit.export.onnx_int8 import export_onnx_int8
    from edgekit.export.tflite_export import export_tflite

    start = time.perf_counter()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        if fmt == "tflite":
            result = export_tflite(int8=int8, output_dir=out, check=False, **kwargs)
        elif int8:
            result = export_onnx_int8(output_dir=out, check=False, **kwargs)
        else:
            result = export_onnx(output_dir=out, check=False, **kwargs)
    return time.perf_counter() - start, dict(result.seconds)


def export_in_process(fmt: str, int8: bool, kwargs: dict, out: Path):
    """One export in a fresh Python process; returns (process seconds, laps)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--one", json.dumps([fmt, int8, kwargs, str(out)])],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    line = next((x for x in done.stdout.splitlines() if x.startswith("LAPS ")), None)
    if done.returncode != 0 or line is None:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"{fmt} {'int8' if int8 else 'fp32'} export failed: {tail}")
    return seconds, json.loads(line[len("LAPS "):])


def peer_rows(name: str, kwargs: dict, scratch: Path, envs: Path) -> list[dict]:
    """litert-torch and onnx2tf int8 conversion times of the same module, or a row saying why not."""
    rows, inputs = [], None
    for peer in ("litert-torch", "onnx2tf"):
        python = envs / peer / "bin" / "python"
        if not python.exists():
            rows.append({"model": name, "peer": peer, "skipped": f"no environment at {python.parent.parent} "
                         "(make bench-peers builds it)"})
            continue
        try:
            inputs = inputs or peer_inputs(name, kwargs, scratch)
            rows.append({"model": name, "peer": peer, **run_peer(peer, python, name, inputs, scratch)})
        except Exception as exc:  # a peer that fails is reported, the others go on
            rows.append({"model": name, "peer": peer, "skipped": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return rows


def peer_inputs(name: str, kwargs: dict, scratch: Path) -> dict:
    """The module's state dict, the 100 default calibration images and a plain ONNX export, for the peers."""
    from edgekit.data import bundled_images
    from edgekit.data.calibration import calibration_set
    from edgekit.models import resolve

    sys.path.insert(0, str(HERE))
    from onnx_latency import baseline_onnx

    handle = resolve(kwargs["model"], weights=kwargs.get("weights"), input_shape=kwargs.get("input_shape"))
    folder = scratch / f"peer-inputs-{name}"
    folder.mkdir(exist_ok=True)
    state = folder / "state.pt"
    torch.save(handle.module.state_dict(), state)
    found = calibration_set(None, handle)
    calib = folder / "calib_nchw.npy"
    np.save(calib, np.ascontiguousarray(found.images, dtype=np.float32))
    _, _, h, w = handle.input_shape
    raw = folder / "calibration_image_sample_data_20x128x128x3_float32.npy"  # the name onnx2tf looks for
    np.save(raw, bundled_images(len(found.images), size=(h, w), seed=1).astype(np.float32) / np.float32(255.0))
    plain = folder / f"{name}_plain.onnx"
    plain.write_bytes(baseline_onnx(handle.module, handle.input_shape))
    factory = "edgekit.models.shufflenetv2:shufflenet_v2_x1_0" if name != "resnet18" else "resnet18:resnet18"
    return {"state_dict": str(state), "calib_nchw": str(calib), "calibration": found.description,
            "onnx2tf_default_calibration": str(raw), "plain_onnx": str(plain), "factory": factory,
            "mean": list(handle.mean), "std": list(handle.std)}


_LITERT_TORCH = """
import importlib, json, sys, time
import numpy as np, torch
from litert_torch_convert import convert_fp32, convert_int8
inputs = json.loads(sys.argv[1])
module_name, factory = inputs["factory"].split(":")
model = getattr(importlib.import_module(module_name), factory)()
model.load_state_dict(torch.load(inputs["state_dict"], map_location="cpu", weights_only=True))
model.eval()
calib = np.load(inputs["calib_nchw"])
sample = torch.from_numpy(calib[:1].copy())
times = {}
for precision, job in (("fp32", lambda p: convert_fp32(model, sample, p)),
                       ("int8", lambda p: convert_int8(model, sample, calib, p))):
    start = time.perf_counter()
    job(sys.argv[2] + f"/{precision}.tflite")
    times[precision] = time.perf_counter() - start
print("RESULT " + json.dumps(times))
"""


def run_peer(peer: str, python: Path, name: str, inputs: dict, scratch: Path) -> dict:
    """Seconds of the peer's conversions of the module ``inputs`` describes, in the peer's environment."""
    work = scratch / f"peer-{peer}-{name}"
    work.mkdir(exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environ["PATH"] = f"{python.parent}{os.pathsep}{environ.get('PATH', '')}"
    if peer == "litert-torch":
        environ["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), str(HERE / "peers")])
        done = subprocess.run([str(python), "-c", _LITERT_TORCH, json.dumps(inputs), str(work)], cwd=work,
                              env=environ, capture_output=True, text=True, timeout=PEER_TIMEOUT_S)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"litert-torch exited {done.returncode}: {tail[:200]}")
        times = json.loads(line[len("RESULT "):])
        return {"fp32_s": times["fp32"], "int8_s": times["int8"], "route": "PT2E static per-channel"}
    result = work / "result.json"
    start = time.perf_counter()
    subprocess.run([str(python), str(HERE / "peers" / "onnx2tf_convert.py"), "--inputs", json.dumps(inputs),
                    "--out-dir", str(work / "out"), "--result", str(result)], cwd=work, env=environ,
                   capture_output=True, text=True, timeout=PEER_TIMEOUT_S)
    seconds = time.perf_counter() - start
    facts = json.loads(result.read_text()) if result.exists() else {"errors": ["no result written"]}
    if facts.get("errors"):
        raise RuntimeError("; ".join(facts["errors"])[:200])
    return {"fp32_s": None, "int8_s": seconds, "route": "one run writes fp32 and full-integer int8"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="shufflenet_v2_x1_0,resnet18")
    parser.add_argument("--formats", default="tflite,onnx")
    parser.add_argument("--repeat", type=int, default=1, help="exports per configuration (median reported)")
    parser.add_argument("--envs", default=str(REPO / ".bench-envs"), help="where make bench-peers put the peers")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--warm", action="store_true", help="all exports in this process, after a warm-up")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process of one export
    args = parser.parse_args()
    if args.one:
        fmt, int8, kwargs, out = json.loads(args.one)
        print("LAPS " + json.dumps(export_once(fmt, int8, kwargs, Path(out))[1]))
        return
    rows: list[dict] = []
    print(f"{'model':20s} {'format':6s} {'fp32 s':>7s} {'int8 s':>7s} {'ratio':>6s} {'target':>12s}  int8 laps (s)"
          f"{' (in this process, warm)' if args.warm else ' (each export a fresh process)'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="edgekit-export-time-") as tmp:
        scratch = Path(tmp)
        for name in args.models.split(","):
            kwargs = model_kwargs(name, scratch)
            for fmt in args.formats.split(","):
                times: dict[bool, list[float]] = {False: [], True: []}
                laps = {}
                if args.warm:
                    export_once(fmt, False, kwargs, scratch / "out")
                for _ in range(args.repeat):
                    for int8 in (False, True):
                        run = export_once if args.warm else export_in_process
                        seconds, laps[int8] = run(fmt, int8, kwargs, scratch / "out")
                        times[int8].append(seconds)
                fp32, int8 = statistics.median(times[False]), statistics.median(times[True])
                ratio_target, seconds_target = TARGETS.get((name, fmt), (None, None))
                met = ratio_target is None or (int8 / fp32 <= ratio_target and int8 <= seconds_target)
                target = f"<={ratio_target:g}x,{seconds_target:g}s" + ("" if met else " !") if ratio_target else ""
                row = {"model": name, "format": fmt, "mode": "warm" if args.warm else "process",
                       "fp32_s": fp32, "int8_s": int8, "ratio": int8 / fp32,
                       "fp32_runs": times[False], "int8_runs": times[True], "int8_laps": laps[True],
                       "fp32_laps": laps[False], "target_met": met}
                rows.append(row)
                lap_text = ", ".join(f"{k} {v:.1f}" for k, v in laps[True].items())
                print(f"{name:20s} {fmt:6s} {fp32:7.1f} {int8:7.1f} {int8 / fp32:5.2f}x {target:>12s}  {lap_text}",
                      flush=True)
            if not args.no_peers:
                for peer in peer_rows(name, kwargs, scratch, Path(args.envs)):
                    rows.append(peer)
                    if "skipped" in peer:
                        print(f"{name:20s} {peer['peer']:12s} skipped: {peer['skipped']}", flush=True)
                        continue
                    fp32 = f"{peer['fp32_s']:7.1f}" if peer["fp32_s"] else "      -"
                    ratio = f"{peer['int8_s'] / peer['fp32_s']:5.2f}x" if peer["fp32_s"] else "     -"
                    print(f"{name:20s} {peer['peer']:12s} {fp32} {peer['int8_s']:7.1f} {ratio}  ({peer['route']})",
                          flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
