"""int8 fidelity on trained weights against the zoo's BatchNorm-calibrated random init, architecture by architecture.

    python benchmarks/int8_trained_vs_init.py [--models mobilenet_v2,efficientnet_b0] [--epochs 12]
                                              [--samples 16] [--calib 32] [--cache DIR] [--json] [--out FILE]
                                              [--html FILE]

The zoo tests judge int8 on BN-calibrated random weights, the only ones this machine has for ImageNet-sized
models. This script asks what those weights cost: each architecture, with a 10-class head, is trained on
scikit-learn's digits at 64x64 (``benchmarks/train_digits.py``'s recipe and split; a few minutes per model on
2 cores, cached in ``--cache``), then exported to int8 TFLite and ONNX with edgekit's defaults twice: with the
trained weights and with the BN-calibrated init a factory without ``--weights`` gets. Each file is measured
the way the export's parity check measures it (logit cosine to PyTorch, worst output) on ``--samples``
images of two kinds: held-out digits (calibrated on training digits) and bundled natural-image crops
(calibrated on other crops). Also printed: how many first layers the export kept in float, and the
trained file's top-1 on the 600 held-out digits beside PyTorch's. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

DEFAULT_MODELS = ("mobilenet_v2", "efficientnet_b0", "mnasnet1_0")
SIZE = (64, 64)
DEFAULT_LR = 0.1
#: Below this held-out top-1 the training is taken to have failed and the model is not measured.
MIN_TRAINED_TOP1 = 0.9
CLASSES = 10
#: Data settings: (name, calibration spec, parity data) -- ``None`` calibration means N bundled crops.
SETTINGS = (("digits", "digits:{calib}", "digits"), ("natural crops", "{calib}", None))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def factory_file(folder: Path, name: str) -> str:
    """A factory file building registry architecture ``name`` with a ``CLASSES``-way head; returns its spec."""
    path = folder / f"digits_{name}.py"
    path.write_text("from edgekit.models.registry import build_architecture\n\n\n"
                    f"def {name}():\n    return build_architecture({name!r}, num_classes={CLASSES})\n")
    return f"{path}:{name}"


def train(name: str, epochs: int, lr: float, cache: Path) -> tuple[Path, float, float]:
    """Weights of ``name`` trained on the digits (cached by name, epochs and peak learning rate); returns the
    file, its fp32 held-out top-1 and the training seconds (0 when cached)."""
    import torch
    from train_digits import SEED, accuracy, train_on_digits

    from edgekit.data import preprocess
    from edgekit.data.digits import digits_images
    from edgekit.models.digits import DIGITS_MEAN, DIGITS_STD
    from edgekit.models.registry import build_architecture

    path = cache / f"{name}_digits_{epochs}ep_lr{lr:g}.pt"
    held_images, held_labels = digits_images("heldout", SIZE)
    x_held = torch.from_numpy(preprocess(held_images, DIGITS_MEAN, DIGITS_STD, 3))
    y_held = torch.from_numpy(held_labels)
    if path.exists():
        model = build_architecture(name, num_classes=CLASSES)
        model.load_state_dict(torch.load(path, weights_only=True))
        return path, accuracy(model, x_held, y_held), 0.0
    torch.manual_seed(SEED)
    train_images, train_labels = digits_images("train", SIZE)
    x = torch.from_numpy(preprocess(train_images, DIGITS_MEAN, DIGITS_STD, 3))
    model = build_architecture(name, num_classes=CLASSES)
    start = time.perf_counter()
    train_on_digits(model, x, torch.from_numpy(train_labels), epochs=epochs, lr=lr,
                    report=lambda epoch, loss: say(f"[{name}] epoch {epoch + 1}/{epochs}: loss {loss:.3f} "
                                                   f"({time.perf_counter() - start:.0f} s)"))
    remeasure_batchnorm(model, x)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path, accuracy(model, x_held, y_held), time.perf_counter() - start


def remeasure_batchnorm(model, x, batch: int = 64) -> None:
    """Replace each BatchNorm's running statistics by their average over ``x`` (the training images): a short
    training leaves them near their init where the momentum is small (MnasNet's, as torchvision's, is 3e-4:
    its held-out top-1 was 10% with the statistics training left, the weights being fine)."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(x[i : i + batch])
    model.eval()


def heldout_top1(path: str) -> float:
    """Top-1 of an exported file on the 600 held-out digits (``edgekit eval``)."""
    from edgekit.evaluate import evaluate

    return evaluate(path, "digits").results[0].top1


def export_one(spec: str, fmt: str, weights: str | None, calib: str, data: str | None, samples: int,
               out: Path) -> dict:
    """One int8 export with edgekit's defaults; the parity figures, float layers and file (or the error)."""
    from edgekit.errors import EdgekitError
    from edgekit.export.float_first_layers import float_prefix_in
    from edgekit.export.request import ExportRequest, Int8Recipe, export
    from edgekit.models.digits import DIGITS_MEAN, DIGITS_STD

    request = ExportRequest(spec, format=fmt, int8=Int8Recipe(calib=calib), weights=weights,
                            input_shape=(1, 3, *SIZE), mean=DIGITS_MEAN, std=DIGITS_STD, output_dir=out,
                            samples=samples, data=data)
    try:
        result = export(request)
    except EdgekitError as exc:  # a failed parity check says its cosine in the message
        return {"error": str(exc).splitlines()[0][:300]}
    return {"cosine": min(o.cosine for o in result.parity.outputs),
            "float_layers": float_prefix_in(result.notes) or "none",
            "path": result.path}


def measure(name: str, args, work: Path) -> list[dict]:
    lr = float(dict(x.split("=") for x in args.lr.split(",")).get(name, DEFAULT_LR)) if args.lr else DEFAULT_LR
    weights, fp32_top1, seconds = train(name, args.epochs, lr, Path(args.cache))
    if fp32_top1 < MIN_TRAINED_TOP1:
        say(f"[{name}] training did not converge (held-out top-1 {fp32_top1:.4f}); try another --lr {name}=...")
        return [{"model": name, "format": "-", "data": "-", "fp32_heldout_top1": fp32_top1,
                 "trained": {"error": f"training did not converge (top-1 {100 * fp32_top1:.1f}%)"}, "init": {}}]
    say(f"[{name}] trained weights: held-out top-1 {fp32_top1:.4f}" + (f" ({seconds:.0f} s)" if seconds else
                                                                         " (cached)"))
    spec = factory_file(work, name)
    rows = []
    for setting, calib, data in SETTINGS:
        for fmt in ("tflite", "onnx"):
            row = {"model": name, "format": fmt, "data": setting, "fp32_heldout_top1": fp32_top1}
            for variant, file in (("trained", str(weights)), ("init", None)):
                say(f"[{name}] {fmt} int8, {variant} weights, {setting}")
                out = work / f"{name}-{fmt}-{variant}-{setting.split()[0]}"
                got = export_one(spec, fmt, file, calib.format(calib=args.calib), data, args.samples, out)
                if variant == "trained" and setting == "digits" and "path" in got:
                    got["heldout_top1"] = heldout_top1(got["path"])
                got.pop("path", None)
                row[variant] = got
            rows.append(row)
    return rows


TABLE_HEADERS = ["model", "format", "data", "cosine trained", "float layers trained", "cosine init",
                 "float layers init", "top-1 fp32 / int8 (trained)"]


def _cosine(side: dict) -> str:
    if "cosine" in side:
        return f"{side['cosine']:.4f}"
    if "error" not in side:
        return ""
    found = re.search(r"parity check failed \(\w+: cosine ([0-9.]+)", side["error"])
    return f"{float(found.group(1)):.4f} (parity fails)" if found else side["error"]


def table_rows(rows: list[dict]) -> list[list]:
    out = []
    for r in rows:
        trained, init = r["trained"], r["init"]
        top1 = (f"{100 * r['fp32_heldout_top1']:.2f} / {100 * trained['heldout_top1']:.2f}"
                if "heldout_top1" in trained else "")
        out.append([r["model"], r["format"], r["data"], _cosine(trained), trained.get("float_layers", ""),
                    _cosine(init), init.get("float_layers", ""), top1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", default="",
                        help=f"peak learning rate per model, e.g. mnasnet1_0=0.05 (default {DEFAULT_LR})")
    parser.add_argument("--samples", type=int, default=16, help="parity images per file")
    parser.add_argument("--calib", type=int, default=32, help="calibration images")
    parser.add_argument("--cache", default=str(REPO / ".bench-envs" / "trained-digits"),
                        help="where trained weights are kept between runs")
    parser.add_argument("--json", action="store_true", help="print only the JSON record on stdout")
    parser.add_argument("--out", default=None, help="also write the JSON record to this file")
    parser.add_argument("--html", default=None, help="also write an HTML page with the table and a chart")
    args = parser.parse_args()

    from edgekit.report import grouped_bar_svg, html_table, page, table

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgekit-trained-vs-init-") as tmp:
        for name in args.models.split(","):
            rows += measure(name, args, Path(tmp))
    record = {"kind": "int8_trained_vs_init", "epochs": args.epochs, "samples": args.samples,
              "calibration_images": args.calib, "input": f"1x3x{SIZE[0]}x{SIZE[1]}", "results": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2))
    if args.html:
        labels = [f"{r['model']} {r['format']} {r['data']}" for r in rows]
        series = {variant: [r[variant].get("cosine") for r in rows] for variant in ("trained", "init")}
        body = ("<h1>int8 logit cosine to PyTorch: trained weights against the BN-calibrated init</h1>"
                + grouped_bar_svg(labels, series, unit="") + html_table(TABLE_HEADERS, table_rows(rows)))
        Path(args.html).write_text(page("edgekit int8: trained vs init", body), encoding="utf-8")
    if args.json:
        print(json.dumps(record, indent=2))
        return
    print(table(TABLE_HEADERS, table_rows(rows)))


if __name__ == "__main__":
    main()
