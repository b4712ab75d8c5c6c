"""Which int8 dot-product instructions a CPU has, read from ``/proc/cpuinfo`` text (a pure parser).

ONNX Runtime's x86 int8 kernels without VNNI multiply-add pairs of u8 x s8 products into int16
(``vpmaddubsw``), which saturates when both products are large: 8-bit weights then overflow and the
model loses accuracy that the quantization itself did not lose. 7-bit weights (``reduce_range``) cannot
overflow. With VNNI (``avx512_vnni``, ``avx_vnni``) on x86 or the dot-product extension (``asimddp``) on
ARM, products accumulate in int32 and full 8-bit weights are safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import ExportError

#: cpuinfo flags that give int32-accumulating int8 dot products.
DOT_PRODUCT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "avxvnni", "amx_int8", "asimddp"})
#: ``--target-cpu`` names: whether that CPU has int8 dot products.
TARGET_CPUS = {
    "host": None,
    "vnni": True,
    "avx512_vnni": True,
    "avx_vnni": True,
    "arm64-dotprod": True,
    "avx2": False,
    "x86-64": False,
    "arm64": False,
}


@dataclass(frozen=True)
class CpuTarget:
    """The CPU an int8 model is tuned for. ``dot_product`` says whether it has int8 dot-product
    instructions; ``reduce_range`` (7-bit weights) is chosen when it has not. ``evidence`` says why."""

    name: str
    dot_product: bool
    evidence: str

    @property
    def reduce_range(self) -> bool:
        return not self.dot_product


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor in ``/proc/cpuinfo`` text (x86 ``flags``, ARM ``Features``)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def cpu_target_from_cpuinfo(cpuinfo: str, name: str = "host") -> CpuTarget:
    """``CpuTarget`` for the CPU described by ``/proc/cpuinfo`` text."""
    flags = parse_cpu_flags(cpuinfo)
    found = sorted(flags & DOT_PRODUCT_FLAGS)
    if found:
        return CpuTarget(name, True, f"{', '.join(found)} in /proc/cpuinfo")
    if not flags:
        return CpuTarget(name, False, "no CPU flags readable: assuming no int8 dot product")
    return CpuTarget(name, False, "no VNNI / asimddp flag in /proc/cpuinfo")


def cpu_target(spec: str | None = None, cpuinfo_path: str | Path = "/proc/cpuinfo") -> CpuTarget:
    """The target named by ``--target-cpu`` (``None`` or ``"host"``: this machine's CPU).

    Raises ``ExportError`` for an unknown name.
    """
    spec = spec or "host"
    if spec not in TARGET_CPUS:
        raise ExportError(f"unknown --target-cpu {spec!r}; choose one of {', '.join(TARGET_CPUS)}")
    if TARGET_CPUS[spec] is None:
        try:
            text = Path(cpuinfo_path).read_text()
        except OSError:
            text = ""
        return cpu_target_from_cpuinfo(text)
    has = bool(TARGET_CPUS[spec])
    return CpuTarget(spec, has, f"--target-cpu {spec}")
