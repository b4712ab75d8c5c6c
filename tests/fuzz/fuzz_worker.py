"""Runs mutants of one model file through ``edgekit check`` and the host benchmark, in one process.

Usage: ``python fuzz_worker.py SOURCE COUNT SEED WORKDIR``. Prints one JSON object: how many mutants ended
in an EdgekitError, how many ran, every traceback (label, class, message), the slowest mutant's seconds,
and what was left in WORKDIR besides the mutant files. A native crash ends this process by a signal,
which the calling test sees as its exit status; a hang is caught by the caller's timeout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutants import mutants  # noqa: E402


def main() -> None:
    source, count, seed, workdir = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    from edgekit.android_bench.bench import run_benchmark, write_bench_outputs
    from edgekit.android_bench.host import HostTarget
    from edgekit.check import check_exported_file
    from edgekit.errors import EdgekitError

    summary = {"errors": 0, "ran": 0, "tracebacks": [], "slowest_s": 0.0, "left_behind": []}
    mutant_dir = workdir / "mutants"
    mutant_dir.mkdir(parents=True, exist_ok=True)
    for label, data in mutants(source.read_bytes(), source.suffix, count, seed):
        path = mutant_dir / f"{label}{source.suffix}"
        path.write_bytes(data)
        started = time.monotonic()
        for step in ("check", "bench"):
            try:
                if step == "check":
                    check_exported_file(path, samples=2)
                else:
                    report = run_benchmark(path, HostTarget(), runs=2, min_secs=0, warmup=0)
                    write_bench_outputs(report, workdir / "bench")
                summary["ran"] += 1
            except EdgekitError as exc:
                summary["errors"] += 1
                if "\n" in str(exc):
                    summary["tracebacks"].append([label, step, "multi-line EdgekitError", str(exc)[:300]])
            except Exception as exc:  # noqa: BLE001 - what the fuzz test exists to find
                summary["tracebacks"].append([label, step, type(exc).__name__, str(exc)[:300]])
        took = time.monotonic() - started
        if took > summary["slowest_s"]:
            summary["slowest_s"], summary["slowest"] = took, label
        path.unlink()
    # Mutants are removed above; bench outputs are expected; anything else (a staged temporary file, a
    # stray engine file) is left behind.
    summary["left_behind"] = sorted(
        str(p.relative_to(workdir)) for p in workdir.rglob("*")
        if p.is_file() and (p.name.startswith(".") or not p.relative_to(workdir).parts[0] == "bench")
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
