"""LiteRT (XNNPACK) latency of edgekit's .tflite against litert-torch's, model by model over the zoo.

    python benchmarks/zoo_latency.py [--models a,b] [--threads 1,2] [--runs 40] [--calib N] [--quick]
                                     [--json] [--out FILE] [--html FILE] [--envs .bench-envs] [--rebuild-peers]
                                     [--keep DIR]

For each registry model (default: the zoo, every registered model except ShuffleNetV2's other widths,
AugShuffleNet and the digits net; ShuffleNetV2 1.0x stays as the reference edgekit was built on):

- edgekit's files: ``export_tflite(model, int8=...)`` with its defaults (what ``edgekit export --format
  tflite [--int8]`` writes: uint8 camera-pixel input, normalisation folded in) and ``check=False``, so the
  time is the export's; fp32 then int8 in one fresh process per model, each timed around the call;
- litert-torch's files of the same module and weights (benchmarks/peers/zoo_peers.py: the registry's
  architecture with the state dict edgekit exports, fp32 by ``litert_torch.convert`` and int8 by its PT2E
  path calibrated on the same images), converted in the litert-torch environment of ``make bench-peers``,
  one fresh process per model, cached under .bench-envs/models/zoo/.

Both files of one model, precision and thread count are timed interleaved in this one process (bursts of
``BURST`` timed invocations after ``SETTLE`` untimed ones, the order swapping every round: A B B A A B ...),
after a warm-up; each side gets
``--runs`` timed invocations. Printed per row: each side's median and p10-p90, the ratio edgekit /
litert-torch of the medians, the target (issue 13: <= 1.0x, <= 0.9x where litert-torch's file has more
TRANSPOSEs than edgekit's, i.e. layout transposes edgekit avoids), each side's export seconds, TRANSPOSE
count and XNNPACK partition count, and each file's parity with PyTorch on two bundled crops (fp32: max abs
error; int8: cosine). Models a side cannot export are listed with the reason, never dropped.
Inputs are fixed pseudo-random tensors of each file's input type: these kernels' time does not depend on
the values. ``--json`` prints only the JSON record on stdout (progress goes to stderr in every mode);
``--html FILE`` writes a page with the table and a chart of the ratios; ``--keep DIR`` keeps edgekit's files
(litert-torch's stay in .bench-envs/models/zoo/<model>/out) for a per-op comparison with
``benchmarks/tflite_op_times.py``. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "peers"))

#: Registered models the default run leaves out: not part of the zoo issue 13 asks for.
NOT_ZOO_FAMILIES = ("augshufflenet", "shufflenetv2-digits")
NOT_ZOO_MODELS = ("shufflenet_v2_x0_5", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")
#: Invocations of one file in a row before the other file's turn.
BURST = 5
#: Untimed invocations at the start of each burst. MobileNetV3-Small fp32, three files (equal within 2% timed
#: alone or in bursts of 5 or 50), interleaved one call at a time: one file's fastest call 1.22x another's.
SETTLE = 1
WARMUP = 3
DEFAULT_RUNS = 40
QUICK_RUNS = 10
QUICK_CALIB = 16
#: Issue 13's targets for edgekit / litert-torch (median latency).
TARGET = 1.0
TARGET_WITH_PEER_TRANSPOSES = 0.9
PARITY_IMAGES = 2
#: edgekit's int8 file with every layer int8 (``--no-float-first-layers``), timed against litert-torch's int8
#: file where edgekit's default int8 export kept its first convolutions in float.
ALL_INT8 = "int8-all"


@dataclass
class Spread:
    """Median and the 10th/90th percentiles of one file's timed invocations, in milliseconds."""

    median: float
    p10: float
    p90: float
    runs: int


def spread(seconds: list[float]) -> Spread:
    """``Spread`` (ms) of a list of invocation times in seconds. Raises ValueError for an empty list."""
    if not seconds:
        raise ValueError("no timed invocations")
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p10, p90 = np.percentile(ms, [10, 90])
    return Spread(float(statistics.median(ms.tolist())), float(p10), float(p90), len(seconds))


def target_for(edgekit_transposes: int | None, peer_transposes: int | None) -> float:
    """The ratio edgekit / litert-torch to meet: 0.9 where the peer's file holds more TRANSPOSEs than
    edgekit's (layout transposes edgekit avoids), else 1.0."""
    if edgekit_transposes is not None and peer_transposes is not None and peer_transposes > edgekit_transposes:
        return TARGET_WITH_PEER_TRANSPOSES
    return TARGET


def interleaved_times(invokers: dict[str, Callable[[], object]], runs: int, burst: int = BURST,
                      warmup: int = WARMUP, clock: Callable[[], float] = time.perf_counter,
                      settle: int = SETTLE) -> dict[str, list[float]]:
    """Time each invoker ``runs`` times, interleaved: ``burst`` calls of one, then of the next, the order
    reversed every round so neither always follows the other. ``warmup`` untimed calls of each first, and
    ``settle`` untimed calls at the start of every burst (the first call after the other file ran finds the
    caches holding that file's weights). Returns each name's call durations in seconds, in call order."""
    names = list(invokers)
    for name in names:
        for _ in range(warmup):
            invokers[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(math.ceil(runs / burst)):
        count = min(burst, runs - r * burst)
        for name in names if r % 2 == 0 else names[::-1]:
            invoke = invokers[name]
            for _ in range(settle):
                invoke()
            for _ in range(count):
                start = clock()
                invoke()
                times[name].append(clock() - start)
    return times


def default_models(names: list[str], families: dict[str, str]) -> list[str]:
    """The zoo among registered ``names`` (``families``: name -> registry family)."""
    return [n for n in names if families.get(n) not in NOT_ZOO_FAMILIES and n not in NOT_ZOO_MODELS]


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- edgekit's side: one fresh process per model ---------------------------------------------------------------


def export_edgekit_here(model: str, out_dir: str, calib: int | None) -> dict:
    """fp32 then int8 ``export_tflite`` of ``model`` in this process; per precision the file and its seconds,
    or the error in one line. Where the int8 export kept its first layers in float (``float_first_layers``),
    also ``ALL_INT8``: the same export with every layer int8, so the table tells that choice's cost apart from
    the lowering's."""
    from edgekit.export.float_first_layers import float_prefix_in
    from edgekit.export.tflite_export import export_tflite

    done = {}
    for precision in ("fp32", "int8", ALL_INT8):
        if precision == ALL_INT8 and not done.get("int8", {}).get("float_layers"):
            continue
        int8 = precision != "fp32"
        start = time.perf_counter()
        try:
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                result = export_tflite(model, int8=int8, calib=calib, check=False,
                                       float_first_layers=precision != ALL_INT8,
                                       output_dir=Path(out_dir) / precision if precision == ALL_INT8 else out_dir)
        except Exception as exc:  # noqa: BLE001  reported as the reason this model has no edgekit file
            done[precision] = {"error": one_line(exc), "seconds": round(time.perf_counter() - start, 1)}
            continue
        done[precision] = {"path": result.path, "seconds": round(time.perf_counter() - start, 2),
                           "layout_transposes": result.layout_transposes,
                           "xnnpack_partitions": result.xnnpack_partitions, "io": result.io,
                           "int8_laps": dict(result.seconds) if int8 else None,
                           "float_layers": float_prefix_in(result.notes)}
    return done


def export_edgekit(model: str, out_dir: Path, calib: int | None) -> dict:
    """``export_edgekit_here`` in a fresh Python process (as ``edgekit export`` runs)."""
    done = subprocess.run([sys.executable, __file__, "--export-one", json.dumps([model, str(out_dir), calib])],
                          capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        why = f"export process exited {done.returncode}: {tail}"
        return {p: {"error": why} for p in ("fp32", "int8")}
    return json.loads(line[len("RESULT "):])


# --- facts about a file ------------------------------------------------------------------------------------------


def file_facts(path: str) -> dict:
    """TRANSPOSE count, op histogram, XNNPACK partitions, input types and size of a .tflite file."""
    from collections import Counter

    from edgekit.analysis.tflite_costs import tflite_nodes
    from edgekit.export.tflite.inspect import xnnpack_partitions

    content = Path(path).read_bytes()
    ops = Counter(node.op_type for node in tflite_nodes(path)[0])
    interpreter = _interpreter(content, 1)
    io = "/".join(np.dtype(d["dtype"]).name for d in interpreter.get_input_details())
    return {"transposes": ops.get("TRANSPOSE", 0), "partitions": xnnpack_partitions(content), "io": io,
            "size_kb": round(len(content) / 1024, 1), "ops": dict(ops.most_common())}


def parity(path: str, images: np.ndarray, reference: list[np.ndarray]) -> dict:
    """Worst output's max abs error and cosine against PyTorch (outputs in PyTorch's order and layout)."""
    from edgekit.runtimes.litert_runtime import LiteRTRuntime

    with LiteRTRuntime(path, threads=1) as runtime:
        outputs = runtime.run(images)
    if len(outputs) != len(reference):
        return {"error": f"{len(outputs)} outputs, PyTorch has {len(reference)}"}
    worst_abs, worst_cos = 0.0, 1.0
    for got, ref in zip(outputs, reference, strict=True):
        got, ref = np.asarray(got, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
        if got.size != ref.size:
            return {"error": f"output of {got.size} values, PyTorch's has {ref.size}"}
        worst_abs = max(worst_abs, float(np.max(np.abs(got - ref))))
        worst_cos = min(worst_cos, float(got @ ref / (np.linalg.norm(got) * np.linalg.norm(ref) + 1e-30)))
    return {"max_abs": worst_abs, "cosine": worst_cos}


def _interpreter(content: bytes, threads: int):
    from edgekit.runtimes.litert_runtime import interpreter_with_random_inputs

    return interpreter_with_random_inputs(content, threads)


def time_pair(edgekit_path: str, peer_path: str, threads: int, runs: int) -> tuple[Spread, Spread]:
    """Interleaved timing of the two files at ``threads`` XNNPACK threads."""
    a = _interpreter(Path(edgekit_path).read_bytes(), threads)
    b = _interpreter(Path(peer_path).read_bytes(), threads)
    times = interleaved_times({"edgekit": a.invoke, "peer": b.invoke}, runs)
    return spread(times["edgekit"]), spread(times["peer"])


# --- the run -----------------------------------------------------------------------------------------------------


def measure_model(model: str, args, work: Path, skipped: list[str]) -> list[dict]:
    """All rows of one model (precision x threads), each side exported/converted first."""
    import torch
    from zoo_peers import convert_model

    from edgekit.data import bundled_images, preprocess
    from edgekit.models import resolve

    say(f"[{model}] edgekit export (fp32, int8)")
    ours = export_edgekit(model, work / model, args.calib)
    handle = resolve(model)
    say(f"[{model}] litert-torch conversion (fp32, int8)")
    peer = convert_model(model, Path(args.envs), calib=args.calib, rebuild=args.rebuild_peers, handle=handle)
    if peer.error:
        skipped.append(f"{model}: litert-torch: {peer.error}")
    _, channels, height, width = handle.input_shape
    images = preprocess(bundled_images(PARITY_IMAGES, size=(height, width), seed=0), handle.mean, handle.std, channels)
    with torch.no_grad():
        out = handle.module(torch.from_numpy(images))
    reference = [t.numpy() for t in (out if isinstance(out, (tuple, list)) else [out])]

    rows = []
    for precision in ("fp32", "int8", ALL_INT8):
        if precision == ALL_INT8 and precision not in ours:
            continue  # no float prefix in the int8 file: nothing else to time
        mine = ours.get(precision, {"error": "not exported"})
        theirs = peer.files.get("int8" if precision == ALL_INT8 else precision)
        if "error" in mine:
            skipped.append(f"{model} {precision}: edgekit: {mine['error']}")
        if theirs is not None and theirs.error:
            skipped.append(f"{model} {precision}: litert-torch: {' '.join(theirs.error.split())[:300]}")
        if "error" in mine or theirs is None or theirs.path is None:
            continue
        facts = {}
        for side, path in (("edgekit", mine["path"]), ("litert-torch", theirs.path)):
            try:
                facts[side] = file_facts(path)
                facts[side]["parity"] = parity(path, images, reference)
            except Exception as exc:  # noqa: BLE001
                skipped.append(f"{model} {precision}: {side}'s file cannot be loaded or run: {one_line(exc)}")
        if len(facts) < 2:
            continue
        target = target_for(facts["edgekit"]["transposes"], facts["litert-torch"]["transposes"])
        for threads in args.thread_counts:
            say(f"[{model}] timing {precision} at {threads} thread(s), {args.runs} runs each, interleaved")
            ek, lt = time_pair(mine["path"], theirs.path, threads, args.runs)
            ratio = ek.median / lt.median
            rows.append({"model": model, "precision": precision, "threads": threads,
                         "edgekit_ms": vars(ek), "litert_torch_ms": vars(lt), "ratio": ratio, "target": target,
                         "target_met": ratio <= target,
                         "edgekit_export_s": mine["seconds"], "litert_torch_export_s": theirs.seconds,
                         "edgekit": facts["edgekit"], "litert_torch": facts["litert-torch"],
                         "edgekit_layout_transposes": mine.get("layout_transposes"),
                         "edgekit_float_layers": mine.get("float_layers"),
                         "edgekit_int8_laps": mine.get("int8_laps"), "peer_reused": peer.reused})
    return rows


def _quality(facts: dict, precision: str) -> str:
    p = facts["parity"]
    if "error" in p:
        return p["error"]
    return f"{p['max_abs']:.1e}" if precision == "fp32" else f"cos {p['cosine']:.4f}"


TABLE_HEADERS = ["model", "prec", "thr", "edgekit ms (p10-p90)", "litert-torch ms (p10-p90)", "ratio", "target",
                 "p10 ratio",
                 "export s ek/lt", "TRANSPOSE ek/lt", "partitions ek/lt", "io ek/lt", "parity ek | lt",
                 "ek float prefix"]


def table_rows(rows: list[dict]) -> list[list]:
    """The terminal/HTML table's rows (``TABLE_HEADERS``) of the JSON rows. "p10 ratio" compares the fastest
    tenth of each side's runs: on a loaded machine it is the steadier estimate of the unshared speed."""
    out = []
    for r in rows:
        ek, lt, fe, fl = r["edgekit_ms"], r["litert_torch_ms"], r["edgekit"], r["litert_torch"]
        mark = "" if r["target_met"] else " miss"
        out.append([r["model"], r["precision"], r["threads"],
                    f"{ek['median']:.2f} ({ek['p10']:.2f}-{ek['p90']:.2f})",
                    f"{lt['median']:.2f} ({lt['p10']:.2f}-{lt['p90']:.2f})",
                    f"{r['ratio']:.3f}x", f"<={r['target']:g}x{mark}", f"{ek['p10'] / lt['p10']:.3f}x",
                    f"{r['edgekit_export_s']:.1f}/{r['litert_torch_export_s']:.1f}",
                    f"{fe['transposes']}/{fl['transposes']}", f"{fe['partitions']}/{fl['partitions']}",
                    f"{fe['io']}/{fl['io']}",
                    f"{_quality(fe, r['precision'])} | {_quality(fl, r['precision'])}",
                    (r.get("edgekit_float_layers") or "-") if r["precision"] == "int8" else "-"])
    return out


def html_page(record: dict) -> str:
    """A self-contained page: the ratios as grouped bars (one bar per precision and thread count) and the table."""
    import html

    from edgekit.report import grouped_bar_svg, html_table, page

    rows = record["results"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    series: dict[str, list[float | None]] = {}
    for precision in ("fp32", "int8", ALL_INT8):
        for threads in record["threads"]:
            by_model = {r["model"]: r["ratio"] for r in rows if r["precision"] == precision and r["threads"] == threads}
            series[f"{precision} {threads}t"] = [by_model.get(m) for m in models]
    skipped = "".join(f"<li>{html.escape(s)}</li>" for s in record["skipped"])
    body = (f"<h1>edgekit vs litert-torch: LiteRT + XNNPACK latency on the zoo</h1>"
            f"<p>{html.escape(record['note'])}</p><h2>edgekit / litert-torch (median latency; lower is better; "
            f"target &lt;= {TARGET:g}x, &lt;= {TARGET_WITH_PEER_TRANSPOSES:g}x where litert-torch adds transposes)</h2>"
            + grouped_bar_svg(models, series, unit="x")
            + "<h2>Table</h2>" + html_table(TABLE_HEADERS, table_rows(rows))
            + (f"<h2>Not measured</h2><ul>{skipped}</ul>" if skipped else ""))
    return page("edgekit zoo latency", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated registry names (default: the zoo)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=None, help=f"timed invocations per file (default {DEFAULT_RUNS})")
    parser.add_argument("--calib", type=int, default=None,
                        help="bundled calibration crops for both sides' int8 (default: edgekit's 100)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_RUNS} runs per file and {QUICK_CALIB} calibration images")
    parser.add_argument("--envs", default=str(REPO / ".bench-envs"), help="where make bench-peers builds litert-torch")
    parser.add_argument("--rebuild-peers", action="store_true", help="convert again even when cached")
    parser.add_argument("--json", action="store_true", help="print only the JSON record on stdout")
    parser.add_argument("--html", default=None, help="also write an HTML page with a chart to this file")
    parser.add_argument("--out", default=None,
                        help="also write the JSON record to this file, rewritten after every model (a partial run "
                             "keeps what it measured)")
    parser.add_argument("--keep", default=None,
                        help="keep edgekit's files in this folder (<model>/...) for benchmarks/tflite_op_times.py")
    parser.add_argument("--export-one", help=argparse.SUPPRESS)  # the child process of one model's exports
    args = parser.parse_args()
    if args.export_one:
        model, out_dir, calib = json.loads(args.export_one)
        print("RESULT " + json.dumps(export_edgekit_here(model, out_dir, calib)))
        return
    args.runs = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    if args.quick and args.calib is None:
        args.calib = QUICK_CALIB
    args.thread_counts = [int(t) for t in args.threads.split(",")]

    from edgekit.models import registry
    from edgekit.report import table
    from edgekit.runtimes.litert_runtime import load_interpreter_module

    names = registry.model_names()
    families = {n: str(registry.model_metadata(n).get("family", "")) for n in names}
    models = args.models.split(",") if args.models else default_models(names, families)
    skipped: list[str] = [f"{m}: not a registered model" for m in models if m not in names]
    models = [m for m in models if m in names]
    _, _, package, version = load_interpreter_module()
    load_before = os.getloadavg()
    results: list[dict] = []

    def make_record() -> dict:
        load_after = os.getloadavg()
        note = (f"{package} {version} with XNNPACK; {args.runs} interleaved runs per file; {os.cpu_count()} CPUs, "
                f"1-minute load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (above the CPU "
                "count, other processes shared the cores and the medians carry their noise)")
        return {"kind": "zoo_latency", "runtime": f"{package} {version} (XNNPACK)", "runs": args.runs,
                "threads": args.thread_counts, "calibration_images": args.calib or 100, "models": models,
                "load_average": {"before": list(load_before), "after": list(load_after), "cpus": os.cpu_count()},
                "note": note, "results": results, "skipped": skipped}

    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(
            prefix="edgekit-zoo-latency-")) as tmp:
        for model in models:
            try:
                rows = measure_model(model, args, Path(tmp), skipped)
            except Exception as exc:  # noqa: BLE001  one model's failure is reported, the others go on
                rows = []
                skipped.append(f"{model}: {one_line(exc)}")
            results += rows
            if rows:
                say(table(TABLE_HEADERS, table_rows(rows)))
            if args.out:
                Path(args.out).write_text(json.dumps(make_record(), indent=2))
    record = make_record()
    note = record["note"]
    if args.html:
        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(html_page(record), encoding="utf-8")
    if args.json:
        print(json.dumps(record, indent=2))
        return
    print(f"edgekit / litert-torch, median latency; {note}")
    print(table(TABLE_HEADERS, table_rows(results)))
    default = [r for r in results if r["precision"] != ALL_INT8]
    print(f"targets met: {sum(r['target_met'] for r in default)} of {len(default)} rows of edgekit's default files")
    if len(default) < len(results):
        every = [r for r in results if r["precision"] == ALL_INT8]
        met = sum(r["target_met"] for r in every)
        print(f"{ALL_INT8} (edgekit's int8 with no float first layers): targets met in {met} of {len(every)} rows")
    for line in skipped:
        print(f"not measured: {line}")


if __name__ == "__main__":
    main()
