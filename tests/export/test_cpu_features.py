"""Int8 dot-product detection from /proc/cpuinfo text, recorded from real machines (trimmed flag lists)."""

import pytest

from edgekit.errors import ExportError
from edgekit.export.cpu_features import cpu_target, cpu_target_from_cpuinfo, parse_cpu_flags

# AMD EPYC (Zen 4), the machine these tests were written on.
EPYC_ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f \
avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vbmi2 avx512_vnni avx512_bitalg
"""
# Intel Haswell: AVX2, no VNNI.
HASWELL = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz
flags\t\t: fpu vme de pse tsc sse sse2 ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand avx2 bmi2
"""
# Intel Alder Lake: AVX-VNNI without AVX-512.
ALDER_LAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx_vnni sha_ni\n"
# Cortex-A76 (Pixel 4-class big core): ARMv8.2 with dot product.
CORTEX_A76 = """processor\t: 4
BogoMIPS\t: 38.40
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
"""
# Cortex-A53: ARMv8.0, no dot product.
CORTEX_A53 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\nCPU part\t: 0xd03\n"


@pytest.mark.parametrize(
    ("cpuinfo", "dot_product"),
    [(EPYC_ZEN4, True), (HASWELL, False), (ALDER_LAKE, True), (CORTEX_A76, True), (CORTEX_A53, False)],
)
def test_dot_product_and_reduce_range_from_cpuinfo(cpuinfo, dot_product):
    target = cpu_target_from_cpuinfo(cpuinfo)
    assert target.dot_product is dot_product
    assert target.reduce_range is (not dot_product)


def test_evidence_names_the_flag_and_empty_text_assumes_none():
    assert "avx512_vnni" in cpu_target_from_cpuinfo(EPYC_ZEN4).evidence
    assert parse_cpu_flags(CORTEX_A53) >= {"asimd", "crc32"}
    empty = cpu_target_from_cpuinfo("")
    assert empty.reduce_range and "assuming" in empty.evidence


def test_target_cpu_override_and_unknown_name(tmp_path):
    assert cpu_target("avx2").reduce_range and not cpu_target("arm64-dotprod").reduce_range
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(HASWELL)
    assert cpu_target(None, cpuinfo).reduce_range
    with pytest.raises(ExportError, match="unknown --target-cpu"):
        cpu_target("pentium")
