"""On-device latency profiling: targets (host, adb, ssh), benchmark binaries, output parsers, fleets.

``make_targets(spec)`` turns a ``--target`` value into targets; ``run_benchmark``/``run_benchmarks`` drive
them; ``write_bench_outputs`` writes JSON, Markdown, HTML and raw tool output. The adb/ssh side lives in
``edgekit.android_bench.adb_target`` and is imported only when such a target is asked for.
"""

from __future__ import annotations

from edgekit.errors import EdgekitError

__all__ = ["make_target", "make_targets", "run_benchmark", "run_benchmarks", "write_bench_outputs"]


def make_targets(spec: str, **options) -> list:
    """The targets a ``--target`` value names.

    In: ``"host"``, ``"adb"``, ``"adb:SERIAL"``, ``"ssh:USER@HOST"`` or ``"all"``; ``options`` go to the
    adb/ssh factory (``edgekit.android_bench.adb_target.targets_from_spec``), e.g. ``benchmark_binary``.
    Out: a list of ``Target``. Raises ``EdgekitError`` for an unknown spec or when the adb/ssh support is
    not installed.
    """
    spec = spec.strip()
    if spec == "host":
        from edgekit.android_bench.host import HostTarget

        return [HostTarget()]
    if spec in ("adb", "all") or spec.startswith(("adb:", "ssh:")):
        try:
            from edgekit.android_bench import adb_target
        except ImportError as exc:
            if exc.name != "edgekit.android_bench.adb_target":
                raise
            raise EdgekitError(
                f"--target {spec}: adb/ssh targets are not available in this edgekit build "
                "(edgekit.android_bench.adb_target is missing); use --target host"
            ) from None
        return list(adb_target.targets_from_spec(spec, **options))
    raise EdgekitError(f"unknown --target {spec!r}; use host, adb, adb:SERIAL, ssh:USER@HOST or all")


def make_target(spec: str, **options):
    """The single target a ``--target`` value names; raises ``EdgekitError`` if it names none or several."""
    targets = make_targets(spec, **options)
    if len(targets) != 1:
        raise EdgekitError(f"--target {spec} names {len(targets)} devices; pick one (adb:SERIAL) or use run_benchmarks")
    return targets[0]


def __getattr__(name: str):
    # Lazy, so importing the package does not import the orchestrator (and through it the report module).
    if name in ("run_benchmark", "run_benchmarks", "write_bench_outputs", "big_core_mask"):
        from edgekit.android_bench import bench

        return getattr(bench, name)
    raise AttributeError(name)
