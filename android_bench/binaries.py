"""Benchmark binaries for devices: where each comes from, the per-ABI cache, the explicit download.

Resolution order for a tool on an ABI: the path the user passed (``--benchmark-binary``), then the cache
``~/.cache/edgekit/bin/<abi>/<tool>`` (``EDGEKIT_CACHE`` overrides ``~/.cache/edgekit``). Nothing is
downloaded unless ``download_benchmark_binary`` is called (``edgekit bench --download-binary``); the
download records the file's sha256 beside it. ``benchmark_model`` has official nightly prebuilts;
``onnxruntime_perf_test`` has none, so it must be built and passed by path or put in the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from edgekit.errors import DownloadError, EdgekitError
from edgekit.fileio import sha256_file
from edgekit.progress import Progress, quiet

BENCHMARK_MODEL = "benchmark_model"
PERF_TEST = "onnxruntime_perf_test"

_NIGHTLY = "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest"
# TFLite's published nightly benchmark_model per ABI (Android ABIs and `uname -m` of Linux boards).
BENCHMARK_MODEL_URLS = {
    "arm64-v8a": f"{_NIGHTLY}/android_aarch64_benchmark_model",
    "armeabi-v7a": f"{_NIGHTLY}/android_arm_benchmark_model",
    "linux-aarch64": f"{_NIGHTLY}/linux_aarch64_benchmark_model",
    "linux-armv7l": f"{_NIGHTLY}/linux_arm_benchmark_model",
    "linux-x86_64": f"{_NIGHTLY}/linux_x86-64_benchmark_model",
}


class BinaryNotFoundError(EdgekitError):
    """No benchmark binary for a tool and ABI: not passed, not cached, not downloaded."""


def cache_root() -> Path:
    """``$EDGEKIT_CACHE/bin`` or ``~/.cache/edgekit/bin``."""
    base = os.environ.get("EDGEKIT_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "edgekit") / "bin"


def tool_for_model(model: str | Path) -> str:
    """``benchmark_model`` for ``.tflite``, ``onnxruntime_perf_test`` for ``.onnx``; ``EdgekitError`` else."""
    suffix = Path(model).suffix.lower()
    if suffix == ".tflite":
        return BENCHMARK_MODEL
    if suffix == ".onnx":
        return PERF_TEST
    raise EdgekitError(f"no benchmark tool for {Path(model).name}: expected a .tflite or .onnx file")


def resolve_benchmark_binary(tool: str, abi: str, explicit: str | Path | None = None,
                             cache_dir: Path | None = None) -> Path:
    """The host path of ``tool`` built for ``abi``.

    In: tool name (``benchmark_model`` or ``onnxruntime_perf_test``), the device ABI (``arm64-v8a``,
    ``armeabi-v7a``, ``linux-aarch64``, ...), the user's ``--benchmark-binary`` path if any, and the cache
    root (default ``cache_root()``). Out: an existing file. Raises ``BinaryNotFoundError`` whose one-line
    message says exactly which file to put where (and, for benchmark_model, the URL to fetch it from).
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise BinaryNotFoundError(f"--benchmark-binary {path} does not exist or is not a file")
        return path
    cached = (cache_dir or cache_root()) / abi / tool
    if cached.is_file():
        return cached
    if tool == BENCHMARK_MODEL and abi in BENCHMARK_MODEL_URLS:
        raise BinaryNotFoundError(
            f"no {tool} for {abi}: download {BENCHMARK_MODEL_URLS[abi]} to {cached} (chmod +x), "
            f"or run again with --download-binary, or pass --benchmark-binary PATH"
        )
    if tool == PERF_TEST:
        raise BinaryNotFoundError(
            f"no {tool} for {abi}: ONNX Runtime publishes no prebuilt; build it for {abi} "
            f"(onnxruntime build.sh --build_shared_lib --android ...) and put it at {cached}, "
            f"or pass --benchmark-binary PATH"
        )
    raise BinaryNotFoundError(f"no {tool} for {abi}: put one at {cached} or pass --benchmark-binary PATH")


def download_benchmark_binary(abi: str, *, cache_dir: Path | None = None, url: str | None = None,
                              progress: Progress | None = None, timeout: float = 60.0) -> Path:
    """Download TFLite's prebuilt ``benchmark_model`` for ``abi`` into the cache (only when called).

    In: the ABI (a key of ``BENCHMARK_MODEL_URLS``), optional cache root, URL override (mirrors, tests)
    and a progress callback (called with ``"downloaded N of M MB"`` lines). Out: the executable's path;
    ``<path>.json`` beside it records URL, size and sha256. Raises ``DownloadError`` naming the URL and
    the file to place by hand when offline or on an HTTP error; ``BinaryNotFoundError`` for an ABI with no
    published binary.
    """
    say = progress or quiet
    source = url or BENCHMARK_MODEL_URLS.get(abi)
    if source is None:
        raise BinaryNotFoundError(f"no published benchmark_model for ABI {abi}; pass --benchmark-binary PATH")
    target = (cache_dir or cache_root()) / abi / BENCHMARK_MODEL
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            next_report = 0
            while block := response.read(1 << 20):
                out.write(block)
                done += len(block)
                if done >= next_report:
                    say(f"downloading {BENCHMARK_MODEL} for {abi}: {done / 1e6:.1f}"
                        + (f" of {total / 1e6:.1f} MB" if total else " MB"))
                    next_report = done + (4 << 20)
        if done == 0:
            raise DownloadError(f"{source} returned an empty file; put {BENCHMARK_MODEL} at {target} by hand")
        sha256 = sha256_file(partial)
        os.chmod(partial, 0o755)
        shutil.move(partial, target)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"cannot download {source} ({reason}); fetch it on a connected machine and put it at {target}"
        ) from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    record = {"url": source, "bytes": done, "sha256": sha256}
    Path(f"{target}.json").write_text(json.dumps(record, indent=2) + "\n")
    say(f"saved {target} (sha256 {record['sha256'][:12]})")
    return target
