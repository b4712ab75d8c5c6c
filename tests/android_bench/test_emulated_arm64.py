"""The device runner on an emulated arm64 device (qemu-aarch64-static + a Debian arm64 root): real ARM
kernels, outputs compared with the x86 run of the same file (cross-architecture parity).

The root comes from ``make arm64-root`` (tests/android_bench/build_arm64_root.sh); without it, or without
qemu-aarch64-static, these tests skip and say why. Timings under qemu are labelled emulated.

qemu emulates the CPU model the root's /proc/cpuinfo describes (named in ROOT/.edgekit-qemu-cpu), never
qemu's default ``max``: ``max`` advertises SME, XNNPACK then runs its SME kernels, and Debian bookworm's
qemu 7.2 mis-emulates the SME SMOPA family (int8 ShuffleNetV2 under XNNPACK came out at cosine 0.86 to
x86_64's output instead of bit-identical).
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
GUEST_ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "/opt/edgekit-site", "PYTHONNOUSERSITE": "1",
             "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"}

pytestmark = [
    pytest.mark.arm64,
    pytest.mark.skipif(QEMU is None, reason="qemu-aarch64-static is not installed (apt-get install qemu-user-static)"),
    pytest.mark.skipif(not (ROOT / ".edgekit-arm64-root-v2").is_file(),
                       reason=f"no arm64 root at {ROOT}; build it with `make arm64-root`"),
]


def guest_cpu() -> str:
    """The qemu CPU model build_arm64_root.sh wrote the root's /proc/cpuinfo for."""
    return (ROOT / ".edgekit-qemu-cpu").read_text().strip()


def run_guest(*args, env: dict[str, str] = GUEST_ENV, timeout: float = 300) -> subprocess.CompletedProcess:
    """The root's python3.11 with ``args`` under qemu-aarch64-static -L ROOT on the root's CPU model;
    ROOT/proc/cpuinfo stands in for /proc/cpuinfo."""
    command = [QEMU, "-cpu", guest_cpu(), "-L", str(ROOT), str(ROOT / "usr/bin/python3.11"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def run_native(*args, timeout=120):
    return subprocess.run([sys.executable, str(RUNNER), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False)


def emulated_facts() -> DeviceFacts:
    return DeviceFacts(target="qemu-aarch64", abi="arm64-v8a", emulated=True)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _parity(model: Path, x: np.ndarray, tmp_path: Path,
            accelerator: str = "cpu") -> tuple[np.ndarray, np.ndarray, float, dict]:
    """``model``'s first output on ``x`` from the emulated arm64 runner and from the x86_64 one (as the
    model gives it: int8 codes for an int8-output file), their max abs difference, the arm64 runner's JSON."""
    np.save(tmp_path / "x.npy", x)
    native = run_native(model, "--accelerator", accelerator, "--runs", "1", "--warmup", "0", "--input-npy",
                        tmp_path / "x.npy", "--output-npy", tmp_path / "native.npy")
    assert native.returncode == 0, native.stdout + native.stderr
    arm = run_guest(RUNNER, model, "--accelerator", accelerator, "--runs", "2", "--warmup", "0", "--input-npy",
                    tmp_path / "x.npy", "--output-npy", tmp_path / "arm.npy")
    assert arm.returncode == 0, arm.stdout[-2000:] + arm.stderr[-2000:]
    _, doc = parse_runner_output(arm.stdout)
    arm_out, native_out = np.load(tmp_path / "arm.npy"), np.load(tmp_path / "native.npy")
    diff = float(np.max(np.abs(arm_out.astype(np.float64) - native_out.astype(np.float64))))
    print(f"cross-architecture parity {model.name} ({accelerator}): max abs diff {diff:.3g} "
          f"[{doc['runtime']} aarch64 ({guest_cpu()}) under qemu vs x86_64]")
    return arm_out, native_out, diff, doc


def test_emulated_python_is_aarch64():
    done = run_guest("-c", "import platform; print(platform.machine()); print(open('/proc/cpuinfo').read())")
    assert done.stdout.splitlines()[0] == "aarch64"
    assert "CPU implementer\t: 0x41" in done.stdout  # the ARM cpuinfo from the root, not the host's


# The arm64 kernel's AT_HWCAP bits by name (arch/arm64/include/uapi/asm/hwcap.h), in /proc/cpuinfo's order.
HWCAP_NAMES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc "
               "dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
# Prints AT_HWCAP, AT_HWCAP2 and MIDR_EL1 (read by running `mrs x0, midr_el1; ret`), then /proc/cpuinfo.
GUEST_CPU_PROBE = """
import ctypes, mmap
libc = ctypes.CDLL(None)
libc.getauxval.restype, libc.getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
code.write(bytes.fromhex("000038d5c0035fd6"))
midr = ctypes.CFUNCTYPE(ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(code)))()
print(libc.getauxval(16), libc.getauxval(26), midr)
print(open("/proc/cpuinfo").read())
"""


def test_root_cpuinfo_describes_the_emulated_cpu():
    """Every core in the root's /proc/cpuinfo has the guest's HWCAPs as Features and the guest's MIDR_EL1 as
    implementer/variant/part/revision, and the guest has no HWCAP2 feature (no SVE2, no SME) for XNNPACK or
    cpuinfo to pick that the Features line would hide."""
    done = run_guest("-c", GUEST_CPU_PROBE, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    first, _, cpuinfo = done.stdout.partition("\n")
    hwcap, hwcap2, midr = map(int, first.split())
    assert hwcap >> len(HWCAP_NAMES) == 0, f"HWCAP {hwcap:#x} has bits past {HWCAP_NAMES[-1]}"
    assert hwcap2 == 0, f"{guest_cpu()}: HWCAP2 {hwcap2:#x} (SVE2/SME/...) is not in the root's cpuinfo"
    features = [name for bit, name in enumerate(HWCAP_NAMES) if hwcap >> bit & 1]
    # The MIDR fields as the arm64 kernel prints them.
    expected = {"Features": " ".join(features), "CPU implementer": f"0x{midr >> 24:02x}",
                "CPU variant": f"0x{midr >> 20 & 0xF:x}", "CPU part": f"0x{midr >> 4 & 0xFFF:03x}",
                "CPU revision": f"{midr & 0xF}"}
    cores = [{key.strip(): value.strip() for key, _, value in (line.partition(":") for line in block.splitlines())}
             for block in cpuinfo.strip().split("\n\n")]
    assert len(cores) == 8
    for core in cores:
        assert {key: core.get(key) for key in expected} == expected, f"processor {core.get('processor')}"


@pytest.mark.slow
def test_fp32_onnx_parity(tiny_onnx_file, tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
    _, _, diff, doc = _parity(tiny_onnx_file, x, tmp_path)
    assert diff <= 1e-4
    assert doc["latency"]["count"] == 2
    facts = emulated_facts()
    assert facts.emulated  # emulated timings are labelled as such wherever they are reported


@pytest.mark.slow
def test_int8_onnx_parity(tiny_onnx_int8_file, tmp_path):
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
    _, _, diff, _ = _parity(tiny_onnx_int8_file, x, tmp_path)
    # int8 kernels differ across ISAs only by requantisation rounding: at most a few output quanta.
    assert diff <= 0.05


@pytest.mark.slow
@pytest.mark.parametrize("accelerator", ["xnnpack", "cpu"])
def test_tflite_parity(tiny_tflite_file, tmp_path, accelerator):
    x = np.random.default_rng(2).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    _, _, diff, doc = _parity(tiny_tflite_file, x, tmp_path, accelerator)
    assert diff <= 1e-4
    assert doc["runtime"].startswith("ai-edge-litert")


@pytest.mark.slow
def test_shufflenet_v2_fp32_parity(tmp_path):
    from edgekit.export import export_onnx

    result = export_onnx("shufflenet_v2_x0_5", output_dir=tmp_path / "model", check=False, input_kind="normalized")
    x = np.random.default_rng(3).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)
    _, _, diff, doc = _parity(Path(result.path), x, tmp_path)
    assert diff <= 1e-3
    assert doc["latency"]["mean_ms"] > 0


def test_runner_without_packages_fails_in_one_line(tiny_onnx_file):
    # No PYTHONPATH: numpy is not importable.
    done = run_guest(RUNNER, tiny_onnx_file, env={"PYTHONNOUSERSITE": "1"}, timeout=120)
    assert done.returncode == 1
    with pytest.raises(Exception, match="ModuleNotFoundError"):
        parse_runner_output(done.stdout)


@pytest.fixture(scope="module")
def shufflenet_photo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One bundled photo as uint8 NHWC pixels, as normalised NCHW floats, and PyTorch's fp32 ShuffleNetV2
    x0.5 output for it."""
    import torch

    from edgekit.data import bundled_images, preprocess
    from edgekit.models import create

    pixels = bundled_images(1, seed=5)
    x_nchw = preprocess(pixels, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with torch.no_grad():
        reference = create("shufflenet_v2_x0_5")(torch.from_numpy(x_nchw)).numpy()
    return pixels, x_nchw, reference


def _shufflenet_tflite(directory: Path, int8: bool) -> Path:
    """edgekit's ShuffleNetV2 x0.5 .tflite (folded shuffles): fp32 taking the normalised image, or int8 with int8
    input and output (``--io int8``: pixel - 128 in, normalisation folded into the model)."""
    from edgekit.export.tflite_export import export_tflite

    if int8:
        return Path(export_tflite("shufflenet_v2_x0_5", int8=True, io="int8", calib=16, output_dir=directory,
                                  check=False).path)
    return Path(export_tflite("shufflenet_v2_x0_5", input_kind="normalized", output_dir=directory, check=False).path)


@pytest.mark.slow
def test_shufflenet_v2_fp32_tflite_parity(shufflenet_photo, tmp_path):
    """edgekit's fp32 .tflite on ARM's XNNPACK kernels."""
    _, x_nchw, reference = shufflenet_photo
    arm, native, diff, doc = _parity(_shufflenet_tflite(tmp_path / "model", int8=False),
                                     np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)), tmp_path, "xnnpack")
    print(f"  cosine to PyTorch fp32: arm64 {cosine(arm, reference):.4f}, x86_64 {cosine(native, reference):.4f}")
    assert diff <= 1e-4
    assert doc["runtime"].startswith("ai-edge-litert")


@pytest.fixture(scope="module")
def shufflenet_int8_tflite(tmp_path_factory) -> Path:
    return _shufflenet_tflite(tmp_path_factory.mktemp("shufflenet-int8"), int8=True)


@pytest.mark.slow
@pytest.mark.parametrize("accelerator", ["xnnpack", "cpu"], ids=["int8-xnnpack", "int8-builtin"])
def test_shufflenet_v2_int8_tflite_parity(shufflenet_int8_tflite, shufflenet_photo, tmp_path, accelerator):
    """edgekit's int8 .tflite on ARM's int8 kernels: the raw int8 output codes of arm64 and x86_64 compared."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(shufflenet_int8_tflite))
    (in_scale, in_zero), (out_scale, out_zero) = (details[0]["quantization"] for details in (
        interpreter.get_input_details(), interpreter.get_output_details()))
    assert in_zero == -128 and np.isclose(in_scale, 1 / 255)  # the file takes int8 = pixel - 128
    pixels, _, reference = shufflenet_photo
    arm, native, _, doc = _parity(shufflenet_int8_tflite, (pixels.astype(np.int16) - 128).astype(np.int8),
                                  tmp_path, accelerator)
    assert arm.dtype == native.dtype == np.int8
    arm_float, native_float = ((codes.astype(np.float32) - out_zero) * out_scale for codes in (arm, native))
    print(f"  cosine to PyTorch fp32: arm64 {cosine(arm_float, reference):.4f}, x86_64 "
          f"{cosine(native_float, reference):.4f}; arm64 vs x86_64 {cosine(arm_float, native_float):.4f}, "
          f"{int(np.count_nonzero(arm != native))} of {arm.size} codes differ")
    if accelerator == "xnnpack":
        # XNNPACK's int8 kernels on a Cortex-A76 (NEON dot product) give the same codes as its x86 kernels.
        # Under qemu's default CPU `max` they did not (cosine 0.86 to x86_64, 981 of 1000 codes off by up to
        # 132): qemu 7.2 mis-emulates the SME SMOPA instructions that XNNPACK's kernels for `max` use.
        assert np.array_equal(arm, native), f"{np.count_nonzero(arm != native)} of {arm.size} int8 codes differ"
    # LiteRT's builtin int8 kernels round differently on ARM and x86 (measured: 898 of 1000 codes differ, by up
    # to 14 quanta; cosine 0.992 between them), and both stay close to the float model.
    assert cosine(native_float, reference) >= 0.95 and cosine(arm_float, reference) >= 0.95
    assert doc["runtime"].startswith("ai-edge-litert")
