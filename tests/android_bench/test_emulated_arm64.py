"""The device runner on an emulated arm64 device (qemu-aarch64-static + a Debian arm64 root): real ARM
kernels, outputs compared with the x86 run of the same file (cross-architecture parity).

The root comes from ``make arm64-root`` (tests/android_bench/build_arm64_root.sh); without it, or without
qemu-aarch64-static, these tests skip and say why. Timings under qemu are labelled emulated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.android_bench.host import RUNNER
from edgekit.android_bench.parsers import parse_runner_output
from edgekit.android_bench.results import DeviceFacts

ROOT = Path(os.environ.get("EDGEKIT_ARM64_ROOT", Path.home() / ".cache" / "edgekit" / "arm64-root"))
QEMU = shutil.which("qemu-aarch64-static")

pytestmark = [
    pytest.mark.arm64,
    pytest.mark.skipif(QEMU is None, reason="qemu-aarch64-static is not installed (apt-get install qemu-user-static)"),
    pytest.mark.skipif(not (ROOT / ".edgekit-arm64-root-v1").is_file(),
                       reason=f"no arm64 root at {ROOT}; build it with `make arm64-root`"),
]


def run_emulated(*args, timeout=300):
    """The device runner under qemu-aarch64-static -L ROOT; ROOT/proc/cpuinfo stands in for /proc/cpuinfo."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "/opt/edgekit-site", "PYTHONNOUSERSITE": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"}
    command = [QEMU, "-L", str(ROOT), str(ROOT / "usr/bin/python3.11"), str(RUNNER), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def run_native(*args, timeout=120):
    return subprocess.run([sys.executable, str(RUNNER), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False)


def emulated_facts() -> DeviceFacts:
    return DeviceFacts(target="qemu-aarch64", abi="arm64-v8a", emulated=True)


def _parity(model: Path, x: np.ndarray, tmp_path: Path, accelerator: str = "cpu") -> tuple[float, dict]:
    np.save(tmp_path / "x.npy", x)
    native = run_native(model, "--accelerator", accelerator, "--runs", "1", "--warmup", "0", "--input-npy",
                        tmp_path / "x.npy", "--output-npy", tmp_path / "native.npy")
    assert native.returncode == 0, native.stdout + native.stderr
    arm = run_emulated(model, "--accelerator", accelerator, "--runs", "2", "--warmup", "0", "--input-npy",
                       tmp_path / "x.npy", "--output-npy", tmp_path / "arm.npy")
    assert arm.returncode == 0, arm.stdout[-2000:] + arm.stderr[-2000:]
    _, doc = parse_runner_output(arm.stdout)
    diff = float(np.max(np.abs(np.load(tmp_path / "arm.npy") - np.load(tmp_path / "native.npy"))))
    print(f"cross-architecture parity {model.name} ({accelerator}): max abs diff {diff:.3g} "
          f"[{doc['runtime']} aarch64 under qemu vs x86_64]")
    return diff, doc


def test_emulated_python_is_aarch64():
    done = subprocess.run([QEMU, "-L", str(ROOT), str(ROOT / "usr/bin/python3.11"), "-c",
                           "import platform; print(platform.machine()); print(open('/proc/cpuinfo').read())"],
                          capture_output=True, text=True, timeout=60, env={"PYTHONPATH": "/opt/edgekit-site"})
    assert done.stdout.splitlines()[0] == "aarch64"
    assert "CPU implementer\t: 0x41" in done.stdout  # the ARM cpuinfo from the root, not the host's


@pytest.mark.slow
def test_fp32_onnx_parity(tiny_onnx_file, tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
    diff, doc = _parity(tiny_onnx_file, x, tmp_path)
    assert diff <= 1e-4
    assert doc["latency"]["count"] == 2
    facts = emulated_facts()
    assert facts.emulated  # emulated timings are labelled as such wherever they are reported


@pytest.mark.slow
def test_int8_onnx_parity(tiny_onnx_int8_file, tmp_path):
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
    diff, _ = _parity(tiny_onnx_int8_file, x, tmp_path)
    # int8 kernels differ across ISAs only by requantisation rounding: at most a few output quanta.
    assert diff <= 0.05


@pytest.mark.slow
@pytest.mark.parametrize("accelerator", ["xnnpack", "cpu"])
def test_tflite_parity(tiny_tflite_file, tmp_path, accelerator):
    x = np.random.default_rng(2).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    diff, doc = _parity(tiny_tflite_file, x, tmp_path, accelerator)
    assert diff <= 1e-4
    assert doc["runtime"].startswith("ai-edge-litert")


@pytest.mark.slow
def test_shufflenet_v2_fp32_parity(tmp_path):
    from edgekit.export import export_onnx

    result = export_onnx("shufflenet_v2_x0_5", output_dir=tmp_path / "model", check=False)
    x = np.random.default_rng(3).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)
    diff, doc = _parity(Path(result.path), x, tmp_path)
    assert diff <= 1e-3
    assert doc["latency"]["mean_ms"] > 0


def test_runner_without_packages_fails_in_one_line(tiny_onnx_file):
    done = subprocess.run([QEMU, "-L", str(ROOT), str(ROOT / "usr/bin/python3.11"), str(RUNNER),
                           str(tiny_onnx_file)], capture_output=True, text=True, timeout=120,
                          env={"PYTHONNOUSERSITE": "1"})  # no PYTHONPATH: numpy is not importable
    assert done.returncode == 1
    with pytest.raises(Exception, match="ModuleNotFoundError"):
        parse_runner_output(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("int8,accel", [(False, "xnnpack"), (True, "cpu"), (True, "xnnpack")],
                         ids=["fp32-xnnpack", "int8-builtin", "int8-xnnpack"])
def test_shufflenet_v2_tflite_parity(tmp_path, int8, accel):
    """edgekit's own .tflite (folded shuffles; int8 with float input/output) on ARM's XNNPACK kernels."""
    import torch

    from edgekit.data import bundled_images, preprocess
    from edgekit.export.tflite_export import export_tflite
    from edgekit.models import create

    result = export_tflite("shufflenet_v2_x0_5", int8=int8, io="float", calib=16, output_dir=tmp_path / "model",
                           check=False)
    x_nchw = preprocess(bundled_images(1, seed=5), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    diff, doc = _parity(Path(result.path), np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)), tmp_path, accel)
    arm, native = np.load(tmp_path / "arm.npy").ravel(), np.load(tmp_path / "native.npy").ravel()
    with torch.no_grad():
        reference = create("shufflenet_v2_x0_5")(torch.from_numpy(x_nchw)).numpy().ravel()

    def cosine(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    print(f"  cosine to PyTorch fp32: arm64 {cosine(arm, reference):.4f}, x86_64 {cosine(native, reference):.4f}; "
          f"arm64 vs x86_64 {cosine(arm, native):.4f}")
    if int8 and accel == "cpu":
        # LiteRT's builtin int8 kernels: measured cosine 0.984 on arm64, 0.983 on x86_64.
        assert cosine(arm, reference) >= 0.95 and cosine(native, reference) >= 0.95
    elif int8:
        # An open finding, recorded rather than hidden: XNNPACK's int8 kernels under qemu-aarch64 give
        # cosine 0.85 to the float model where x86_64's give 0.98 (and ARM's builtin kernels 0.98). Either
        # qemu 7.2 emulates an ARM dot-product/rounding instruction differently or XNNPACK's ARM int8 path
        # rounds differently and these untrained weights amplify it; only a real ARM device can settle it.
        assert cosine(native, reference) >= 0.95 and cosine(arm, reference) >= 0.8
    else:
        assert diff <= 1e-4
    assert doc["runtime"].startswith("ai-edge-litert")
