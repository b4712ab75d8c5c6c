"""litert-torch's fp32 and PT2E int8 .tflite of any edgekit registry model, with the weights edgekit exports.

Runs in the project's .venv (as build_peers.py does): resolves the model as ``edgekit export`` does (its
deterministic, BatchNorm-calibrated init), saves that state dict and the int8 calibration images edgekit's
``--int8`` uses by default (``calibration_set``), then runs ``litert_torch_convert.py`` in the litert-torch
environment that ``make bench-peers`` builds under ``.bench-envs/litert-torch``, one fresh process per model.
Each conversion is timed inside that process around the convert call (imports excluded, its first-call
warm-up included), as edgekit's exports are in benchmarks/zoo_latency.py.

Files are cached under ``.bench-envs/models/zoo/<model>/`` and reused while the weights hash, the model's
source file, the calibration count and the converter script are unchanged (``rebuild=True`` converts again).
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PEER = "litert-torch"
CONVERTER = HERE / "litert_torch_convert.py"
CONVERT_TIMEOUT_S = 1800


@dataclass
class PeerFile:
    """One peer conversion: the file, or the one-line reason there is none."""

    precision: str
    path: str | None = None
    seconds: float | None = None
    error: str | None = None


@dataclass
class PeerModel:
    """litert-torch's conversions of one model, and how they were made."""

    model: str
    tool: str = PEER
    version: str | None = None
    weights_sha256: str | None = None
    reused: bool = False
    files: dict[str, PeerFile] = field(default_factory=dict)
    error: str | None = None  # why no conversion ran at all (no environment, input preparation failed)

    def to_dict(self) -> dict:
        return asdict(self)


def peer_python(envs: Path) -> Path | None:
    """The litert-torch environment's interpreter, or None when ``make bench-peers`` has not built it."""
    python = envs / PEER / "bin" / "python"
    return python if python.exists() else None


def install_failure(envs: Path) -> str | None:
    """The last pip error of a failed litert-torch install (its log's last line), if one was attempted."""
    log = envs / "logs" / f"install-{PEER}.log"
    if not log.exists():
        return None
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["(empty install log)"])[-1][:300]


def missing_reason(envs: Path) -> str:
    """Why there is no litert-torch to convert with, in one line."""
    failure = install_failure(envs)
    reason = f"no litert-torch environment at {envs / PEER}"
    return f"{reason} (its install failed: {failure})" if failure else f"{reason}; run `make bench-peers`"


def _source_sha(handle_module: torch.nn.Module) -> str:
    """A hash of the file that defines the model's class: a changed architecture invalidates the cache."""
    try:
        source = inspect.getsourcefile(type(handle_module))
        return hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else ""
    except (TypeError, OSError):
        return ""


def write_inputs(handle, folder: Path, calib: int | None) -> dict:
    """A registry model's (``handle``: ``edgekit.models.resolve``'s) state dict and calibration images (NCHW
    float32) in ``folder``; the converter's inputs JSON. ``calib``: the number of bundled calibration crops
    (None: edgekit's default set)."""
    from edgekit.data.calibration import calibration_set

    folder.mkdir(parents=True, exist_ok=True)
    state = folder / "state.pt"
    torch.save(handle.module.state_dict(), state)
    found = calibration_set(calib, handle)
    calib_path = folder / "calib_nchw.npy"
    np.save(calib_path, np.ascontiguousarray(found.images, dtype=np.float32))
    return {"model": handle.name, "state_dict": str(state), "calib_nchw": str(calib_path),
            "calibration": found.description, "weights_sha256": handle.weights_sha256,
            "source_sha256": _source_sha(handle.module), "calib_count": len(found.images),
            "converter_sha256": hashlib.sha256(CONVERTER.read_bytes()).hexdigest(),
            "input_shape": list(handle.input_shape)}


def _cache_key(inputs: dict) -> dict:
    return {k: inputs[k] for k in ("model", "weights_sha256", "source_sha256", "calib_count", "converter_sha256")}


def convert_model(model: str, envs: Path, calib: int | None = None, rebuild: bool = False,
                  precisions: tuple[str, ...] = ("fp32", "int8"), handle=None) -> PeerModel:
    """litert-torch's files of registry ``model`` (converted now, or reused from the cache); ``handle``: its
    ``resolve(model)`` if the caller has it. Never raises for a failed conversion: the record says why."""
    record = PeerModel(model)
    python = peer_python(envs)
    if python is None:
        record.error = missing_reason(envs)
        return record
    folder = envs / "models" / "zoo" / model
    folder.mkdir(parents=True, exist_ok=True)
    # one conversion of a model at a time: a second caller waits, then finds the first one's files cached
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _convert_locked(record, python, folder, model, calib, rebuild, precisions, handle)


def _convert_locked(record: PeerModel, python: Path, folder: Path, model: str, calib: int | None, rebuild: bool,
                    precisions: tuple[str, ...], handle) -> PeerModel:
    try:
        if handle is None:
            from edgekit.models import resolve

            handle = resolve(model)
        inputs = write_inputs(handle, folder / "inputs", calib)
    except Exception as exc:  # noqa: BLE001  a model edgekit cannot even build is reported, the others go on
        record.error = f"preparing inputs: {type(exc).__name__}: {str(exc).strip()[:200]}"
        return record
    record.weights_sha256 = inputs["weights_sha256"]
    done_path = folder / "result.json"
    if not rebuild and done_path.exists():
        done = json.loads(done_path.read_text())
        if done.get("key") == _cache_key(inputs) and set(precisions) <= set(done.get("files", {})):
            record.version, record.reused = done.get("version"), True
            record.files = {p: PeerFile(**f) for p, f in done["files"].items() if p in precisions}
            if all(f.path is None or Path(f.path).exists() for f in record.files.values()):
                return record
            record.files, record.reused = {}, False
    record.version = _version(python)
    out_dir = folder / "out"
    shutil.rmtree(out_dir, ignore_errors=True)
    scratch = folder / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    result_path = scratch / "result.json"
    log = folder / "convert.log"
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environ["PATH"] = f"{python.parent}{os.pathsep}{environ.get('PATH', '')}"
    environ["PYTHONPATH"] = str(REPO)
    cmd = [str(python), str(CONVERTER), "--inputs", json.dumps({**inputs, "precisions": list(precisions)}),
           "--out-dir", str(out_dir), "--result", str(result_path)]
    start = time.perf_counter()
    try:
        with log.open("w") as out:
            exit_code = subprocess.run(cmd, cwd=scratch, env=environ, stdout=out, stderr=subprocess.STDOUT,
                                       timeout=CONVERT_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        exit_code = None
    result = json.loads(result_path.read_text()) if result_path.exists() else {"models": [], "errors": []}
    for m in result.get("models", []):
        record.files[m["precision"]] = PeerFile(m["precision"], m["path"], m["conversion_seconds"])
    for text in result.get("errors", []):
        precision, _, reason = text.partition(": ")
        record.files.setdefault(precision, PeerFile(precision, error=" ".join(reason.split())[:300]))
    for precision in precisions:
        if precision not in record.files:
            why = (f"conversion ran past {CONVERT_TIMEOUT_S} s" if exit_code is None
                   else f"converter exited {exit_code}: {_last_line(log)}")
            record.files[precision] = PeerFile(precision, error=why)
    done = {"key": _cache_key(inputs), "version": record.version,
            "process_seconds": round(time.perf_counter() - start, 1),
            "files": {p: asdict(f) for p, f in record.files.items()}}
    done_path.write_text(json.dumps(done, indent=2))
    return record


def _version(python: Path) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({PEER!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or None


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"
