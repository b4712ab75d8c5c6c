"""LiteRT (XNNPACK) latency of edgekit's .tflite against litert-torch, onnx2tf and a hand-form NHWC graph.

Every variant is ShuffleNetV2 1.0x with the same weights, fp32 and full-integer int8:

- edgekit's default export (``export_tflite``, what ``edgekit export --format tflite [--int8]`` writes);
- each alternative ``--shuffle`` lowering (roundtrip, fused), built in-process from the same graph;
- the peers: litert-torch's and onnx2tf's files, when ``make bench-peers`` built them (its manifest);
- the hand-form NHWC graph (reshape / 5-D transpose / reshape + split): that is edgekit's ``reshape``
  lowering, counted as a peer, since it is what writing the NHWC graph by hand gives;
- the "floor": the shuffle deleted (``lower_shuffles(graph, "floor")``). A different function, so only a
  lower bound on what any shuffle lowering can reach, never a candidate.

All interpreters live in one process and are timed interleaved (round-robin, the order rotating every
round, fp32 and int8 together) so machine noise hits every variant alike. The script prints the median
latency of each variant, its ratio to the fastest peer (litert-torch, onnx2tf, hand-form) at the same
precision and thread count, the XNNPACK partition count and TRANSPOSE count of its file, and its parity
against PyTorch; then one JSON line.

    python benchmarks/tflite_latency.py [--threads 1,2] [--rounds 30] [--runs 5] [--peers .bench-envs/models]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from edgekit.data import bundled_images, preprocess
from edgekit.export.onnx_export import DEFAULT_OPSET, simplify, torch_to_onnx
from edgekit.export.passes import apply_shuffle_passes
from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
from edgekit.export.tflite.inspect import xnnpack_partitions
from edgekit.export.tflite.shuffle import lower_shuffles
from edgekit.export.tflite.writer import write_tflite
from edgekit.export.tflite_export import calibration_images, export_tflite, lower_channel_shuffles
from edgekit.models import resolve
from edgekit.report import table
from edgekit.runtimes.litert_runtime import LiteRTRuntime, load_interpreter_module

MODEL = "shufflenet_v2_x1_0"
HAND_FORM = "hand-form (reshape/5-D transpose/reshape + split)"
FLOOR = "floor (shuffle deleted; lower bound)"
ALTERNATIVES = ("roundtrip", "fused")
REPO = Path(__file__).resolve().parent.parent


class Variant:
    """One .tflite file under test: ``kind`` is "edgekit", "peer" or "bound"."""

    def __init__(self, label: str, kind: str, precision: str, path: Path, source: str) -> None:
        self.label, self.kind, self.precision, self.path, self.source = label, kind, precision, path, source
        self.content = path.read_bytes()


def edgekit_variants(work: Path, calib: int, skipped: list[str]) -> list[Variant]:
    """edgekit's default export plus each alternative lowering and the floor, fp32 and int8."""
    from edgekit.export.tflite.calibrate import calibrate_ranges
    from edgekit.export.tflite.quantize import quantize_graph

    variants = []
    for int8 in (False, True):
        precision = "int8" if int8 else "fp32"
        try:
            result = export_tflite(MODEL, int8=int8, calib=calib, output_dir=work / "default", check=False)
            label = f"edgekit default ({result.shuffle_lowering})"
            variants.append(Variant(label, "edgekit", precision, Path(result.path), "export_tflite"))
        except Exception as exc:  # noqa: BLE001  a benchmark reports what it could not build and goes on
            skipped.append(f"edgekit default {precision}: {_one_line(exc)}")

    handle = resolve(MODEL)
    onnx_model = simplify(torch_to_onnx(handle.module, handle.input_shape, DEFAULT_OPSET))
    onnx_model, _, _ = apply_shuffle_passes(onnx_model, "reshape")
    base, _ = onnx_to_tflite_graph(onnx_model)
    images = None
    lowerings = [(f"edgekit --shuffle {name}", "edgekit", name) for name in ALTERNATIVES]
    lowerings += [(HAND_FORM, "peer", "reshape"), (FLOOR, "bound", "floor")]
    for label, kind, lowering in lowerings:
        graph = copy.deepcopy(base)
        if lowering == "floor":
            lower_shuffles(graph, "floor")
        else:
            lower_channel_shuffles(graph, lowering)
        path = work / f"{lowering}.tflite"
        path.write_bytes(write_tflite(graph, description=f"edgekit {MODEL} {lowering} fp32"))
        variants.append(Variant(label, kind, "fp32", path, f"lower {lowering}"))
        try:
            if images is None:
                images, _ = calibration_images(calib, handle)
            quantized = quantize_graph(graph, calibrate_ranges(graph, images), io="int8")
            path = work / f"{lowering}_int8.tflite"
            path.write_bytes(write_tflite(quantized, description=f"edgekit {MODEL} {lowering} int8"))
            variants.append(Variant(label, kind, "int8", path, f"lower {lowering} + quantize"))
        except Exception as exc:  # noqa: BLE001
            skipped.append(f"{label} int8: {_one_line(exc)}")
    return variants


def peer_variants(models_dir: Path, skipped: list[str]) -> tuple[list[Variant], dict]:
    """The peers' files listed in ``make bench-peers``'s manifest, and what it says about each peer."""
    manifest_path = models_dir / "manifest.json"
    if not manifest_path.exists():
        skipped.append(f"no peer manifest at {manifest_path}: run `make bench-peers` for litert-torch/onnx2tf")
        return [], {}
    manifest = json.loads(manifest_path.read_text())
    variants = []
    for m in manifest.get("models", []):
        path = Path(m["path"])
        if not path.is_absolute():
            path = REPO / path
        if not path.exists():
            skipped.append(f"{m['tool']} {m['precision']}: {path} is missing")
            continue
        variants.append(Variant(f"{m['tool']} {m.get('version') or ''}".strip(), "peer", m["precision"], path,
                                m.get("route", m["tool"])))
    for name, peer in manifest.get("peers", {}).items():
        if peer.get("status") != "ok":
            skipped.append(f"{name}: {peer.get('status')}: {peer.get('error') or peer.get('errors')}")
    return variants, manifest.get("peers", {})


def op_counts(content: bytes) -> dict[str, int]:
    """Histogram of builtin operators in a .tflite flatbuffer (all subgraphs)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    counts: dict[str, int] = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            name = names.get(codes[op.opcodeIndex], str(codes[op.opcodeIndex]))
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def io_type(interpreter_class, content: bytes) -> str:
    """The input type and output type, e.g. "int8/int8" (what an app feeds and reads)."""
    interpreter = interpreter_class(model_content=content)
    ends = (interpreter.get_input_details()[0], interpreter.get_output_details()[0])
    return "/".join(np.dtype(d["dtype"]).name for d in ends)


def model_input(interpreter, image_nchw: np.ndarray) -> np.ndarray:
    """``image_nchw`` (float, preprocessed) in the layout and type the interpreter's input wants."""
    detail = interpreter.get_input_details()[0]
    shape = tuple(int(d) for d in detail["shape"])
    x = image_nchw
    if len(shape) == 4 and shape[-1] == x.shape[1] and shape[1] != x.shape[1]:
        x = x.transpose(0, 2, 3, 1)
    dtype = np.dtype(detail["dtype"])
    if dtype.kind in "iu":
        scale, zero_point = detail["quantization"]
        info = np.iinfo(dtype)
        x = np.clip(np.round(x / scale) + zero_point, info.min, info.max)
    return np.ascontiguousarray(x.reshape(shape), dtype=dtype)


def parity(variant: Variant, x_nchw: np.ndarray, reference: np.ndarray) -> dict:
    """fp32: max abs difference of logits from PyTorch; int8: cosine and top-1 agreement too."""
    with LiteRTRuntime(variant.path, threads=1) as runtime:
        y = runtime.run(x_nchw)[0].reshape(reference.shape)
    ref, got = reference.astype(np.float64), y.astype(np.float64)
    cosine = float(np.mean(np.sum(ref * got, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))))
    return {"max_abs": float(np.max(np.abs(ref - got))), "cosine": cosine,
            "top1_agreement": float(np.mean(ref.argmax(1) == got.argmax(1)))}


def interleaved_medians(interpreters: dict, rounds: int, runs: int) -> dict[str, float]:
    names = list(interpreters)
    for n in names:  # warm-up: XNNPACK packs weights and sizes its workspace on the first runs
        for _ in range(5):
            interpreters[n].invoke()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            invoke = interpreters[n].invoke
            for _ in range(runs):
                start = time.perf_counter()
                invoke()
                samples[n].append(time.perf_counter() - start)
    return {n: statistics.median(v) * 1e3 for n, v in samples.items()}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5, help="invocations per variant per round")
    parser.add_argument("--calib", type=int, default=100, help="calibration images for int8 (edgekit's default)")
    parser.add_argument("--peers", default=str(REPO / ".bench-envs" / "models"),
                        help="folder with make bench-peers's manifest.json")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]

    interpreter_class, _, litert_package, litert_version = load_interpreter_module()
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-tflite-") as tmp:
        build_start = time.perf_counter()
        variants = edgekit_variants(Path(tmp), args.calib, skipped)
        build_seconds = time.perf_counter() - build_start
        peers, peer_facts = peer_variants(Path(args.peers), skipped)
        variants += peers

        handle = resolve(MODEL)
        images = preprocess(bundled_images(8, seed=0), handle.mean, handle.std)  # the parity check's crops
        with torch.no_grad():
            reference = handle.module.eval()(torch.from_numpy(images)).numpy()
        facts = {}
        for v in list(variants):
            key = (v.label, v.precision)
            try:
                ops = op_counts(v.content)
                facts[key] = {"partitions": xnnpack_partitions(v.content), "transposes": ops.get("TRANSPOSE", 0),
                              "ops": ops, "parity": parity(v, images, reference), "size_kb": len(v.content) / 1024,
                              "io": io_type(interpreter_class, v.content)}
            except Exception as exc:  # noqa: BLE001
                skipped.append(f"{v.label} {v.precision}: cannot load or run ({_one_line(exc)})")
                variants.remove(v)

        load_before = os.getloadavg()
        record = {"model": MODEL, "runtime": f"{litert_package} {litert_version} (XNNPACK)",
                  "rounds": args.rounds, "runs": args.runs, "calibration_images": args.calib,
                  "edgekit_build_seconds": round(build_seconds, 1), "peers": peer_facts, "skipped": skipped,
                  "results": []}
        rows = []
        for threads in thread_counts:
            interpreters = {}
            for v in variants:
                interpreter = interpreter_class(model_content=v.content, num_threads=threads)
                interpreter.allocate_tensors()
                detail = interpreter.get_input_details()[0]
                interpreter.set_tensor(detail["index"], model_input(interpreter, images[:1]))
                interpreters[(v.label, v.precision)] = interpreter
            medians = interleaved_medians(interpreters, args.rounds, args.runs)
            for precision in ("fp32", "int8"):
                group = [v for v in variants if v.precision == precision]
                peer_ms = {v.label: medians[(v.label, precision)] for v in group if v.kind == "peer"}
                fastest = min(peer_ms, key=peer_ms.get) if peer_ms else None
                for v in sorted(group, key=lambda v: medians[(v.label, precision)]):
                    key = (v.label, precision)
                    ms = medians[key]
                    ratio = ms / peer_ms[fastest] if fastest else None
                    f = facts[key]
                    p = f["parity"]
                    quality = f"{p['max_abs']:.1e}" if precision == "fp32" else \
                        f"cos {p['cosine']:.4f} top1 {p['top1_agreement']:.2f}"
                    rows.append([v.label, precision, f["io"], threads, round(ms, 3),
                                 round(ratio, 3) if ratio else "-", f["partitions"], f["transposes"], quality])
                    record["results"].append({
                        "variant": v.label, "kind": v.kind, "precision": precision, "threads": threads,
                        "median_ms": ms, "fastest_peer": fastest, "ratio_to_fastest_peer": ratio,
                        "xnnpack_partitions": f["partitions"], "transposes": f["transposes"],
                        "io": f["io"], "size_kb": round(f["size_kb"], 1), "parity_vs_pytorch": p, "ops": f["ops"],
                        "source": v.source, "file": str(v.path)})
            del interpreters
        record["load_average"] = {"before": [round(x, 2) for x in load_before],
                                  "after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}

    print(f"{MODEL}: {litert_package} {litert_version} with XNNPACK, {args.rounds}x{args.runs} interleaved "
          f"runs per variant and thread count; ratio = median / fastest peer (litert-torch, onnx2tf, hand-form) "
          f"at the same precision and threads; parity vs PyTorch on 8 bundled crops")
    load = record["load_average"]
    print(f"1-minute load average {load['before'][0]} before timing, {load['after'][0]} after, on {load['cpus']} "
          "CPUs: above the CPU count, other processes shared the cores and the medians carry their noise")
    print(table(["variant", "precision", "io", "threads", "median ms", "vs fastest peer", "XNNPACK partitions",
                 "TRANSPOSE", "parity (fp32 max abs / int8)"], rows))
    for line in skipped:
        print(f"skipped: {line}")
    print(json.dumps(record))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        raise SystemExit(1) from None
