"""``edgekit.cpu_features`` under its former name: the CPU-flag parser sits in the package root so that both
the int8 exporter and ``edgekit.check`` (which the export package imports) can read the host's CPU."""

from edgekit.cpu_features import (
    DOT_PRODUCT_FLAGS,
    TARGET_CPUS,
    CpuTarget,
    cpu_target,
    cpu_target_from_cpuinfo,
    parse_cpu_flags,
)

__all__ = ["DOT_PRODUCT_FLAGS", "TARGET_CPUS", "CpuTarget", "cpu_target", "cpu_target_from_cpuinfo", "parse_cpu_flags"]
