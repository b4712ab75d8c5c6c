"""Build the peer .tflite files that benchmarks/tflite_latency.py compares edgekit against.

litert-torch and onnx2tf are baselines, never edgekit dependencies: each gets its own virtual environment
under ``.bench-envs/`` (git-ignored; the project's .venv is never touched), and converts ShuffleNetV2 1.0x
with the very weights edgekit exports. This script runs in the project's .venv, which writes the shared
inputs (state dict, calibration images, plain ONNX export), then runs each peer's converter in its own
environment and writes ``.bench-envs/models/manifest.json``. A peer that fails to install or convert is
recorded with the reason, and the others go on.

    python benchmarks/peers/build_peers.py [--peers litert-torch,onnx2tf] [--envs .bench-envs]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MODEL = "shufflenet_v2_x1_0"
#: The calibration file onnx2tf otherwise downloads from GitHub (unreachable here) when it quantizes.
ONNX2TF_CALIB_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"

#: How each peer is installed. Pinned, so that a rebuild gives the same converter; the torch wheel is the
#: CPU build on local disk (a looser pin can pull a multi-GB CUDA build), held there by a constraint file.
PEERS = {
    "litert-torch": {
        "steps": [["torch==2.13.0"], ["-c", "{constraints}", "litert-torch==0.10.0"]],
        "constraints": ["torch==2.13.0", "torchvision<=0.29.1"],
        "script": "litert_torch_convert.py",
        "version_of": "litert-torch",
        # only for ``import edgekit.models.shufflenetv2`` (torch + stdlib): the architecture is not copied
        "pythonpath": True,
    },
    "onnx2tf": {
        # onnx2tf pins TensorFlow 2.19, onnx 1.19, numpy 1.26 and its other dependencies exactly
        "steps": [["onnx2tf==1.29.24"]],
        "constraints": [],
        "script": "onnx2tf_convert.py",
        "version_of": "onnx2tf",
        "pythonpath": False,
    },
}
CONVERT_TIMEOUT_S = 1800


def prepare_inputs(inputs: Path, calib_count: int) -> dict:
    """Write what every peer converts from, all from edgekit's own model and data in this .venv."""
    from edgekit.data import bundled_images, preprocess
    from edgekit.export.tflite_export import calibration_images
    from edgekit.models import create, resolve

    inputs.mkdir(parents=True, exist_ok=True)
    handle = resolve(MODEL)
    module = create(MODEL).eval()
    state_path = inputs / f"{MODEL}.pt"
    torch.save(module.state_dict(), state_path)
    # The same images edgekit's --int8 calibrates on by default (seed-1 bundled crops, preprocessed).
    nhwc, description = calibration_images(calib_count, handle)
    calib_nchw = inputs / "calib_nchw.npy"
    calib_nhwc = inputs / "calib_nhwc.npy"
    np.save(calib_nchw, np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)))
    np.save(calib_nhwc, nhwc)
    # onnx2tf reads this file name from its working directory (else downloads it from GitHub) for int8
    # calibration and its own ONNX-vs-TF check: RGB in [0, 1], NHWC, resized to the input size and
    # normalised with ImageNet mean/std, which is edgekit's preprocessing. So it holds edgekit's calibration
    # crops at 224x224, whatever its name says (onnx2tf takes the shape from the data, not the name). Its
    # -cind flag would take normalised data instead, but then its ONNX check feeds NHWC data to the NCHW
    # model, fails and skips its shape-estimation step: not what a user of onnx2tf gets.
    _, _, h, w = handle.input_shape
    raw = bundled_images(calib_count, size=(h, w), seed=1).astype(np.float32) / np.float32(255.0)
    assert np.allclose(preprocess(bundled_images(2, size=(h, w), seed=1), handle.mean, handle.std),
                       nhwc[:2].transpose(0, 3, 1, 2)), "calibration images are not edgekit's"
    onnx2tf_default = inputs / ONNX2TF_CALIB_NAME
    np.save(onnx2tf_default, raw)
    onnx_path = inputs / f"{MODEL}_plain.onnx"
    onnx_path.write_bytes(plain_onnx(module, handle.input_shape))
    return {
        "state_dict": str(state_path),
        "weights_sha256": handle.weights_sha256,
        "weights_source": handle.weights_source,
        "calib_nchw": str(calib_nchw),
        "calib_nhwc": str(calib_nhwc),
        "calibration": description,
        "onnx2tf_default_calibration": str(onnx2tf_default),
        "plain_onnx": str(onnx_path),
        "input_shape": list(handle.input_shape),
        "mean": list(handle.mean),
        "std": list(handle.std),
    }


def plain_onnx(module, shape) -> bytes:
    """What a user feeds onnx2tf: torch.onnx.export (TorchScript exporter, opset 17) + onnxsim."""
    sys.path.insert(0, str(HERE.parent))
    from onnx_latency import baseline_onnx  # the ONNX benchmark's baseline, one definition for both

    return baseline_onnx(module, shape)


def env_size_mb(env: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(env):
        for f in files:
            p = Path(root, f)
            if not p.is_symlink():
                total += p.stat().st_size
    return round(total / 2**20, 1)


def ensure_env(name: str, spec: dict, envs: Path, logs: Path) -> dict:
    """Create and install the peer's environment unless its stamp says it is done; returns install facts."""
    env = envs / name
    stamp = env / ".installed.json"
    wanted = json.dumps(spec["steps"])
    if stamp.exists():
        facts = json.loads(stamp.read_text())
        if facts.get("steps") == wanted:
            facts["reused"] = True
            return facts
    constraints = envs / f"constraints-{name}.txt"
    constraints.write_text("".join(line + "\n" for line in spec["constraints"]))
    start = time.perf_counter()
    venv.EnvBuilder(with_pip=True, clear=False).create(env)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    log = logs / f"install-{name}.log"
    with log.open("a") as out:
        for step in [["--upgrade", "pip"], *spec["steps"]]:
            args = [a.format(constraints=constraints) for a in step]
            print(f"[{name}] pip install {' '.join(args)}", flush=True)
            subprocess.run(pip + args, stdout=out, stderr=subprocess.STDOUT, check=True)
    facts = {
        "steps": wanted,
        "install_seconds": round(time.perf_counter() - start, 1),
        "env_size_mb": env_size_mb(env),
        "version": package_version(env, spec["version_of"]),
    }
    stamp.write_text(json.dumps(facts))
    facts["reused"] = False
    return facts


def package_version(env: Path, package: str) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or None


def convert(name: str, spec: dict, envs: Path, logs: Path, inputs: dict, models: Path) -> dict:
    """Run the peer's converter in its environment, in a scratch working directory of its own."""
    env = envs / name
    scratch = envs / "scratch" / name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    out_json = scratch / "result.json"
    cmd = [str(env / "bin" / "python"), str(HERE / spec["script"]), "--inputs", json.dumps(inputs),
           "--out-dir", str(models / name), "--result", str(out_json)]
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # as if activated: onnx2tf runs the `onnxsim` command of its own environment
    environ["PATH"] = f"{env / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
    if spec["pythonpath"]:
        environ["PYTHONPATH"] = str(REPO)
    log = logs / f"convert-{name}.log"
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(cmd, cwd=scratch, env=environ, stdout=out, stderr=subprocess.STDOUT,
                              timeout=CONVERT_TIMEOUT_S)
    elapsed = round(time.perf_counter() - start, 1)
    result = json.loads(out_json.read_text()) if out_json.exists() else {"models": [], "errors": []}
    result["process_seconds"] = elapsed
    if done.returncode != 0:
        result.setdefault("errors", []).append(f"converter exited {done.returncode}: {last_line(log)}")
    return result


def last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--envs", default=str(REPO / ".bench-envs"))
    parser.add_argument("--calib", type=int, default=100, help="calibration images (edgekit's default: 100)")
    args = parser.parse_args()

    envs = Path(args.envs).resolve()
    models, logs = envs / "models", envs / "logs"
    models.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    print("writing shared inputs (state dict, calibration images, plain ONNX) from .venv", flush=True)
    inputs = prepare_inputs(envs / "inputs", args.calib)
    manifest_path = models / "manifest.json"
    manifest = {"model": MODEL, "created": datetime.datetime.now().isoformat(timespec="seconds"),
                "inputs": inputs, "peers": {}, "models": []}
    if manifest_path.exists():  # keep the peers this run does not rebuild
        old = json.loads(manifest_path.read_text())
        manifest["peers"] = {k: v for k, v in old.get("peers", {}).items() if k in PEERS}
        manifest["models"] = [m for m in old.get("models", []) if m["tool"] not in args.peers.split(",")]
    for name in args.peers.split(","):
        spec = PEERS[name]
        record: dict = {"status": "ok"}
        manifest["peers"][name] = record
        try:
            record.update(ensure_env(name, spec, envs, logs))
        except (subprocess.CalledProcessError, OSError) as exc:
            record.update(status="install failed", error=f"{exc}; see {logs / f'install-{name}.log'}")
            print(f"[{name}] install failed: {record['error']}", flush=True)
            continue
        print(f"[{name}] {record.get('version')} installed ({record.get('env_size_mb')} MB); converting",
              flush=True)
        try:
            result = convert(name, spec, envs, logs, inputs, models)
        except subprocess.TimeoutExpired:
            result = {"models": [], "errors": [f"conversion ran past {CONVERT_TIMEOUT_S} s"]}
        for m in result.get("models", []):
            manifest["models"].append({"tool": name, "version": record.get("version"), **m})
        record["conversion_process_seconds"] = result.get("process_seconds")
        if result.get("errors"):
            record.update(status="conversion failed" if not result.get("models") else "partial",
                          errors=result["errors"])
        print(f"[{name}] {record['status']}: {[m['precision'] for m in result.get('models', [])]}"
              + (f" errors: {result['errors']}" if result.get("errors") else ""), flush=True)
        manifest_path.write_text(json.dumps(manifest, indent=2))
    manifest_path.write_text(json.dumps(manifest, indent=2))
    print(f"manifest: {manifest_path}")


if __name__ == "__main__":
    main()
