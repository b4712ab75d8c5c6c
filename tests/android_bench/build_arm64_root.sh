#!/usr/bin/env bash
# Builds the emulated arm64 "device" the arm64 tests run on: Debian bookworm arm64 packages (python3.11,
# busybox) unpacked with dpkg -x, the aarch64 wheels of numpy, onnxruntime and ai-edge-litert installed
# with pip --target, and an ARM /proc/cpuinfo that qemu-aarch64-static -L serves to the guest (ONNX Runtime
# crashes on the host's x86 one). Idempotent: a finished root is left alone.
#
# The guest CPU is a named model, written to ROOT/.edgekit-qemu-cpu for the tests to pass as -cpu, and the
# cpuinfo describes that same CPU. qemu's default `max` advertises SME, XNNPACK then picks its SME kernels,
# and Debian bookworm's qemu 7.2 mis-emulates the SME SMOPA family: int8 outputs drift (cosine 0.85 to the
# float model instead of 0.98). A Cortex-A76 (ARMv8.2 with dot product, no SVE/SME) is a common phone core
# and qemu 7.2 emulates it correctly.
#
#   EDGEKIT_ARM64_ROOT  where to build (default ~/.cache/edgekit/arm64-root)
#   PYTHON              a host python with pip (default .venv/bin/python, else python3)
set -euo pipefail
ROOT="${EDGEKIT_ARM64_ROOT:-$HOME/.cache/edgekit/arm64-root}"
STAMP="$ROOT/.edgekit-arm64-root-v2"
QEMU_CPU=cortex-a76
if [ -f "$STAMP" ]; then
    echo "arm64 root: $ROOT (cached)"
    exit 0
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
# The script changes directory below: make a relative interpreter path absolute first.
case "$PYTHON" in */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;; esac
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq qemu-user-static >/dev/null
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
elif ! apt-cache show libc6:arm64 >/dev/null 2>&1; then
    $SUDO apt-get update -qq
fi

# Best effort: register qemu-aarch64 with binfmt_misc where the machine allows it (the tests do not need
# it; they invoke qemu-aarch64-static -L ROOT explicitly).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
fi
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    $SUDO update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi

rm -rf "$ROOT.partial"
mkdir -p "$ROOT.partial/debs"
cd "$ROOT.partial/debs"
PKGS="libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libuuid1
      libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libcrypt1 libdb5.3 libnsl2 libtirpc3
      libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
      python3.11-minimal libpython3.11-minimal libpython3.11-stdlib busybox"
apt-get download -qq $(for p in $PKGS; do echo "$p:arm64"; done) >/dev/null
for deb in ./*.deb; do dpkg -x "$deb" "$ROOT.partial"; done
cd "$ROOT.partial"
rm -rf "$ROOT.partial/debs"

"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile \
    --target "$ROOT.partial/opt/edgekit-site" \
    --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
    --platform manylinux_2_17_aarch64 --only-binary=:all: --python-version 3.11 --implementation cp \
    numpy onnxruntime ai-edge-litert

# qemu-aarch64-static -L ROOT serves ROOT/proc/cpuinfo for the guest's /proc/cpuinfo. Contents: eight
# cores of the emulated CPU as the arm64 kernel prints them (cpuinfo's parser needs "processor" and
# "Features"): MIDR 0x414fd0b1 (r4p1) and the HWCAPs qemu 7.2 gives a cortex-a76 guest, in the kernel's order
# (no evtstrm: qemu does not set it). test_emulated_arm64.py checks both against the running guest.
mkdir -p "$ROOT.partial/proc"
: > "$ROOT.partial/proc/cpuinfo"
for i in 0 1 2 3 4 5 6 7; do
    cat >> "$ROOT.partial/proc/cpuinfo" <<CPU
processor	: $i
BogoMIPS	: 38.40
Features	: fp asimd aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x4
CPU part	: 0xd0b
CPU revision	: 1

CPU
done
echo "$QEMU_CPU" > "$ROOT.partial/.edgekit-qemu-cpu"
ln -sf python3.11 "$ROOT.partial/usr/bin/python3"

mv "$ROOT.partial" "$ROOT.new"
rm -rf "$ROOT"
mv "$ROOT.new" "$ROOT"
echo "built $(date -u +%FT%TZ) in $(( $(date +%s) - start )) s" > "$STAMP"
echo "arm64 root: $ROOT ($(du -sh "$ROOT" | cut -f1), $(( $(date +%s) - start )) s)"
