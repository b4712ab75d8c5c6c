"""The first load and run of a model file, where a native crash cannot take the caller down.

ONNX Runtime and LiteRT are C++ and trust the file: a damaged one can end the process with SIGSEGV or
SIGABRT, which no ``except`` catches. ``vet_model_file`` therefore validates what can be validated in
Python (``tflite_structure`` for TFLite), then loads the file and runs it once on zeros in a child
process forked from a small clean server process (``python -m edgekit.runtimes.vetting``, started once per
process), with the same engine options the caller will use. A child that dies by a signal, hangs or
raises becomes one ``ModelFileError`` naming the file and the likely cause. Files that passed, and files
edgekit wrote itself in this process (``trust_written``), are remembered by content hash, so each is vetted
once per process and option set.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgekit.errors import EdgekitError, ModelFileError
from edgekit.fileio import sha256_bytes, sha256_file

#: How long one isolated load-and-run may take before the file is declared hanging.
VET_TIMEOUT_S = 300.0

_trusted: set[tuple[str, tuple]] = set()
_written: set[str] = set()
_lock = threading.Lock()


def trust_written(content: bytes) -> None:
    """Mark bytes edgekit itself just wrote as safe to open in process (no isolated first run)."""
    with _lock:
        _written.add(sha256_bytes(content))


def validate_model_file(path: str | os.PathLike[str]) -> None:
    """The checks that need no engine: a TFLite file's structure (``tflite_structure``), an ONNX file's
    protobuf and ``onnx.checker``. For files that run elsewhere (a phone): raises ``ModelFileError``."""
    path = Path(path)
    if path.suffix.lower() == ".tflite":
        from .tflite_structure import validate_tflite_file

        validate_tflite_file(path)
    elif path.suffix.lower() == ".onnx":
        import onnx

        try:
            onnx.checker.check_model(onnx.load(str(path), load_external_data=False))
        except Exception as exc:  # protobuf's DecodeError, onnx's ValidationError
            raise ModelFileError(f"{path} is not a valid ONNX model ({exc.__class__.__name__}: "
                                 f"{' '.join(str(exc).split())[:160]}); re-export it") from None


def declared_input_shape(path: str | os.PathLike[str]) -> tuple[int | None, ...] | None:
    """The first input's shape as the file declares it, read without an engine (None when unreadable or
    absent; None entries for dynamic dimensions). Lets callers refuse a mismatched file before running it."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".onnx":
            import onnx

            dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
            return tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
        if path.suffix.lower() == ".tflite":
            from .tflite_structure import validate_tflite

            content = path.read_bytes()
            validate_tflite(content, str(path))
            from ai_edge_litert import schema_py_generated as schema

            graph = schema.Model.GetRootAs(content, 0).Subgraphs(0)
            tensor = graph.Tensors(graph.Inputs(0))
            return tuple(int(tensor.Shape(i)) for i in range(tensor.ShapeLength()))
    except Exception:  # unreadable here: the engine's own checks will say why
        return None
    return None


def vet_model_file(
    path: str | os.PathLike[str],
    *,
    threads: int = 1,
    xnnpack: bool = True,
    optimization: str = "all",
    timeout_s: float = VET_TIMEOUT_S,
) -> None:
    """Validate ``path`` and load and run it once in an isolated child with these engine options.

    Returns when the file loaded and ran (or was vetted before with the same options, or was written by
    edgekit in this process). Raises ``ModelFileError`` (one line: file, what happened, likely cause, fix)
    when validation fails, the child raises, dies by a signal or does not finish in ``timeout_s``.
    """
    path = Path(path)
    digest = sha256_file(path)
    options = (path.suffix.lower(), int(threads), bool(xnnpack), str(optimization))
    with _lock:
        if digest in _written or (digest, options) in _trusted:
            return
    if options[0] == ".tflite":
        from .tflite_structure import validate_tflite_file

        validate_tflite_file(path)
    _run_isolated(path, options, timeout_s)
    with _lock:
        _trusted.add((digest, options))


class _VetServer:
    """A clean ``python -m edgekit.runtimes.vetting`` process that forks one child per file to vet.

    The server imports the engines once and is single-threaded, so a fork is safe and starts in
    milliseconds; the child loads and runs the file and dies alone if the engine crashes. The server
    reports each child's fate as one JSON line and exits when its stdin closes (its parent is gone).
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def ask(self, request: dict, timeout_s: float) -> dict:
        for _attempt in (1, 2):  # a server killed by a signal meant for its children is restarted once
            if self.process is None or self.process.poll() is not None:
                # One BLAS thread: the server forks, and forking a process that runs thread pools is unsafe.
                env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "edgekit.runtimes.vetting"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1, env=env,
                )
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
                ready, _, _ = select.select([self.process.stdout], [], [], timeout_s + 30)
                line = self.process.stdout.readline() if ready else ""
            except (BrokenPipeError, OSError):
                line = ""
            if line:
                return json.loads(line)
            self.close()
            if not ready:
                return {"kind": "timeout"}
        return {"kind": "error", "text": "edgekit's isolated runner could not start; reinstall edgekit"}

    def close(self) -> None:
        if self.process is not None:
            with contextlib.suppress(OSError):
                self.process.kill()
            self.process.wait()
            self.process = None


_server = _VetServer()
atexit.register(_server.close)


def _run_isolated(path: Path, options: tuple, timeout_s: float) -> None:
    with _lock:
        answer = _server.ask({"path": str(path.resolve()), "options": list(options), "timeout": timeout_s},
                             timeout_s)
    engine = "LiteRT" if options[0] == ".tflite" else "ONNX Runtime"
    kind = answer.get("kind")
    if kind == "ok":
        return
    if kind == "timeout":
        raise ModelFileError(
            f"{path} did not finish loading and running once in {engine} within {timeout_s:g} s; the file is "
            "likely damaged (a loop or a huge shape): re-export it"
        )
    if kind == "signal":
        raise ModelFileError(
            f"{engine} crashed ({_signal_name(int(answer['signal']))}) loading and running {path} once; its "
            "contents are damaged (tensor indices, shapes or buffers out of range): re-export it"
        )
    raise ModelFileError(str(answer.get("text") or f"{engine} could not load {path}; re-export it"))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _first_run(path: str, options: list) -> tuple[str, str]:
    """In the forked child: open ``path`` with ``options``, run it once on zeros; ``(kind, text)``."""
    suffix, threads, xnnpack, optimization = options
    try:
        import numpy as np

        from edgekit.runtimes import open_runtime
        from edgekit.runtimes.base import nchw_input_shape

        with open_runtime(path, threads=threads, xnnpack=xnnpack, optimization=optimization, vet=False) as rt:
            rt.run([np.zeros(nchw_input_shape(spec), dtype=np.float32) for spec in rt.inputs])
        return "ok", ""
    except EdgekitError as exc:
        return "error", " ".join(str(exc).split())
    except BaseException as exc:  # any engine error: the parent turns it into one line
        text = " ".join(str(exc).split())[:200]
        return "error", (f"{Path(path).name} failed its first run ({exc.__class__.__name__}: {text}); the file is "
                         "likely damaged: re-export it")


def _serve_one(request: dict) -> dict:
    """Fork a child for one request, wait for it up to its timeout, and describe how it ended."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        code = 0
        try:
            kind, text = _first_run(request["path"], request["options"])
            os.write(write_end, json.dumps({"kind": kind, "text": text}).encode()[:60000])
        except BaseException:
            code = 3
        os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + float(request.get("timeout", VET_TIMEOUT_S))
    status = None
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
        elif time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return {"kind": "timeout"}
        else:
            time.sleep(0.005)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    if os.WIFSIGNALED(status):
        return {"kind": "signal", "signal": os.WTERMSIG(status)}
    if payload:
        return json.loads(payload)
    return {"kind": "error", "text": f"the isolated first run exited with status {os.WEXITSTATUS(status)}"}


def _serve() -> None:
    """The server loop: one JSON request per stdin line, one JSON answer per stdout line."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # engine chatter in the children goes to stderr, never into the answers
    for module in ("numpy", "onnxruntime", "ai_edge_litert.interpreter", "edgekit.runtimes.onnx_runtime",
                   "edgekit.runtimes.litert_runtime"):
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    for line in sys.stdin:
        answers.write(json.dumps(_serve_one(json.loads(line))) + "\n")


if __name__ == "__main__":
    _serve()
