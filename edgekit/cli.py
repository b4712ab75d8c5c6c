"""The ``edgekit`` command: parses flags, calls the Python API, prints results. Nothing else lives here."""

from __future__ import annotations

import functools
import sys

import click

from edgekit import __version__
from edgekit.errors import EdgekitError


def _progress(message: str) -> None:
    click.echo(f"edgekit: {message}", err=True)


def _one_line_errors(func):
    """Turn EdgekitError into one line on stderr and its exit code; never a traceback for bad input."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EdgekitError as exc:
            message = " ".join(str(exc).split())
            click.echo(f"edgekit: error: {message}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("edgekit: interrupted", err=True)
            sys.exit(130)

    return wrapper


def _parse_shape(_ctx, _param, value):
    if value is None:
        return None
    from edgekit.models import parse_input_shape

    try:
        return parse_input_shape(value)
    except EdgekitError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
def main() -> None:
    """edgekit: take a PyTorch CNN to an Android app — export, quantize, prove parity, profile."""


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
@_one_line_errors
def models_command(as_json: bool) -> None:
    """List the reference models with parameters, multiply-adds and input size."""
    from edgekit.models import list_models
    from edgekit.report import render_models, to_json

    infos = list_models()
    click.echo(to_json(infos) if as_json else render_models(infos), nl=not as_json)


model_option = click.option(
    "--model", "model", default=None, metavar="NAME|FILE.py:FACTORY|MODULE:FACTORY",
    help="Registry name (see `edgekit models`) or a factory returning an nn.Module.",
)
weights_option = click.option(
    "--weights", type=click.Path(dir_okay=False), default=None,
    help="A torchvision-format state dict (.pth), loaded with weights_only=True.",
)
pretrained_option = click.option(
    "--pretrained", is_flag=True, help="Download the published ImageNet weights (explicit; never automatic).",
)
shape_option = click.option(
    "--input-shape", callback=_parse_shape, default=None, metavar="N,C,H,W",
    help="Input shape for user models, e.g. 1,3,224,224.",
)
data_option = click.option(
    "--data", type=click.Path(), default=None, metavar="DIR",
    help="Folder of JPEG/PNG images for the parity check (default: bundled natural images).",
)
samples_option = click.option("--samples", type=click.IntRange(min=1), default=8, show_default=True,
                              help="Number of images the parity check uses.")


@main.command("export")
@model_option
@click.option("--format", "fmt", type=click.Choice(["onnx", "tflite"]), default="onnx", show_default=True)
@click.option("--int8", is_flag=True, help="TFLite: full-integer int8 (per-channel weights, int8 activations).")
@click.option("--calib", default=None, metavar="DIR|N",
              help="int8 calibration: an image folder or a number of bundled images (default 100).")
@click.option("--io", "io", type=click.Choice(["int8", "float"]), default="int8", show_default=True,
              help="int8 model input/output type (int8: an app feeds camera bytes directly).")
@weights_option
@pretrained_option
@shape_option
@click.option("--output", "output_dir", type=click.Path(file_okay=False), default="edgekit-out",
              show_default=True, help="Directory for the model file and its report.")
@click.option("--shuffle", "shuffle_lowering", default=None, metavar="LOWERING",
              help="Channel-shuffle lowering. ONNX: fused (default), reshape, concat. "
                   "TFLite: auto (default: folded where it pays, else roundtrip), folded, roundtrip, fused, reshape.")
@click.option("--opset", type=int, default=None, help="ONNX opset (default 17).")
@click.option("--no-check", is_flag=True, help="Skip the parity check (and keep the file even if it is wrong).")
@data_option
@samples_option
@click.option("--json", "as_json", is_flag=True, help="Print the export report as JSON on stdout.")
@_one_line_errors
def export_command(model, fmt, int8, calib, io, weights, pretrained, input_shape, output_dir, shuffle_lowering,
                   opset, no_check, data, samples, as_json) -> None:
    """Export a model (default shufflenet_v2_x1_0) to ONNX or TFLite and prove parity with PyTorch."""
    from edgekit.export import DEFAULT_OPSET, DEFAULT_SHUFFLE_LOWERING, export_onnx
    from edgekit.export.tflite_export import DEFAULT_TFLITE_SHUFFLE, export_tflite
    from edgekit.report import render_export, to_json

    common = dict(weights=weights, pretrained=pretrained, input_shape=input_shape, output_dir=output_dir,
                  check=not no_check, data=data, samples=samples, progress=_progress)
    if fmt == "tflite":
        if opset is not None:
            raise click.UsageError("--opset applies to --format onnx only")
        result = export_tflite(model or "shufflenet_v2_x1_0", int8=int8, io=io, calib=calib,
                               shuffle_lowering=shuffle_lowering or DEFAULT_TFLITE_SHUFFLE, **common)
    else:
        if int8 or calib is not None:
            raise click.UsageError(
                "--int8 and --calib apply to --format tflite; for ONNX, export fp32 (int8 ONNX is not built yet)"
            )
        result = export_onnx(model or "shufflenet_v2_x1_0",
                             shuffle_lowering=shuffle_lowering or DEFAULT_SHUFFLE_LOWERING,
                             opset=opset or DEFAULT_OPSET, **common)
    click.echo(to_json(result) if as_json else render_export(result), nl=not as_json)


@main.command("check")
@click.argument("exported", type=click.Path())
@model_option
@weights_option
@pretrained_option
@shape_option
@data_option
@samples_option
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the parity report as JSON on stdout.")
@_one_line_errors
def check_command(exported, model, weights, pretrained, input_shape, data, samples, threads, as_json) -> None:
    """Prove an exported .onnx/.tflite computes what the PyTorch model computes (exit 1 if not)."""
    from edgekit.check import check_exported_file
    from edgekit.report import render_parity, to_json

    report = check_exported_file(
        exported, model=model, weights=weights, pretrained=pretrained, input_shape=input_shape, data=data,
        samples=samples, threads=threads, progress=_progress,
    )
    click.echo(to_json(report) if as_json else render_parity(report), nl=not as_json)
    if not report.passed:
        sys.exit(1)


def _int_list(_ctx, _param, value):
    try:
        values = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not values or any(v < 1 for v in values):
        raise click.BadParameter(f"{value!r}: give positive thread counts such as 1,2,4")
    return values


def _name_list(_ctx, _param, value):
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in ("cpu", "xnnpack", "gpu", "nnapi")]
    if not names or unknown:
        raise click.BadParameter(f"{value!r}: choose from cpu, xnnpack, gpu, nnapi (comma-separated)")
    return names


@main.command("bench")
@click.argument("model_file", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--target", "target_spec", default="host", show_default=True,
              metavar="host|adb[:SERIAL]|ssh:USER@HOST|all", help="Where to run the model.")
@click.option("--threads", callback=_int_list, default="1", show_default=True, metavar="N[,N...]")
@click.option("--accelerator", callback=_name_list, default=None, metavar="cpu,xnnpack,gpu,nnapi",
              help="Accelerators to compare (default: the tool's default for the model).")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True, help="Minimum timed runs.")
@click.option("--min-secs", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Minimum seconds of timed runs per configuration.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Warm-up runs.")
@click.option("--cooldown", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds of idle between configurations.")
@click.option("--op-profile", is_flag=True, help="Also record the per-op profile.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds a configuration may take (then its partial result is kept).")
@click.option("--output", "output_dir", type=click.Path(file_okay=False), default="edgekit-bench",
              show_default=True, help="Directory for bench.json, bench.md, bench.html and raw tool output.")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False), default=None,
              help="benchmark_model / onnxruntime_perf_test built for the device.")
@click.option("--download-binary", is_flag=True,
              help="Download TFLite's prebuilt benchmark_model for the device's ABI into the cache.")
@click.option("--json", "as_json", is_flag=True, help="Print the benchmark report as JSON on stdout.")
@_one_line_errors
def bench_command(model_file, target_spec, threads, accelerator, runs, min_secs, warmup, cooldown, op_profile,
                  timeout, output_dir, benchmark_binary, download_binary, as_json) -> None:
    """Measure MODEL (.tflite/.onnx) per thread count and accelerator; write JSON, Markdown and HTML."""
    from pathlib import Path

    from edgekit.android_bench import make_targets
    from edgekit.android_bench.bench import run_benchmarks, write_bench_outputs
    from edgekit.errors import ModelFileError
    from edgekit.report import render_bench, to_json

    if not Path(model_file).is_file():
        raise ModelFileError(f"model file {model_file} does not exist; pass an exported .tflite or .onnx file")
    options = {}
    if target_spec != "host":
        options = {"benchmark_binary": benchmark_binary, "download_binary": download_binary,
                   "progress": _progress}
    targets = make_targets(target_spec, **options)
    report = run_benchmarks(
        model_file, targets, threads=threads, accelerators=accelerator, runs=runs, min_secs=min_secs,
        warmup=warmup, cooldown=cooldown, op_profile=op_profile, timeout=timeout, progress=_progress,
    )
    paths = write_bench_outputs(report, output_dir)
    _progress(f"wrote {paths['json']}, {paths['markdown']} and {paths['html']}")
    click.echo(to_json(report) if as_json else render_bench(report), nl=not as_json)
    if report.runs and all(r.status == "failed" for r in report.runs):
        sys.exit(1)


@main.command("devices")
@click.option("--adb", "adb_path", default="adb", show_default=True, metavar="PATH",
              help="The adb binary (its server port follows ANDROID_ADB_SERVER_PORT).")
@click.option("--json", "as_json", is_flag=True, help="Print the devices and their facts as JSON.")
@_one_line_errors
def devices_command(adb_path, as_json) -> None:
    """List attached adb devices with their facts: model, SoC, ABI, Android version, cores, tools."""
    from edgekit.android_bench.adb_target import list_devices
    from edgekit.report import render_devices, to_json

    listings = list_devices(adb_path=adb_path)
    click.echo(to_json(listings) if as_json else render_devices(listings), nl=not as_json)


@main.command("eval")
@click.argument("model_or_file", metavar="FILE_OR_MODEL")
@click.option("--data", default="digits", show_default=True, metavar="DIR|digits",
              help="A folder with one subfolder per class (named like the model's labels), or the bundled "
                   "digits held-out split (digits, digits:train, digits:all).")
@click.option("--compare", default=None, metavar="FILE_OR_MODEL",
              help="A second model (e.g. the int8 file of the fp32 one) run on the same images: drop and agreement.")
@weights_option
@shape_option
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Images decoded and run per step (memory stays at one batch).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the accuracy report as JSON on stdout.")
@_one_line_errors
def eval_command(model_or_file, data, compare, weights, input_shape, batch_size, threads, as_json) -> None:
    """Top-1/top-5 accuracy and per-class confusion of a model or exported file on labelled images."""
    from edgekit.evaluate import evaluate
    from edgekit.report import render_eval, to_json

    report = evaluate(model_or_file, data, compare=compare, weights=weights, input_shape=input_shape,
                      batch_size=batch_size, threads=threads, progress=_progress)
    click.echo(to_json(report) if as_json else render_eval(report), nl=not as_json)


if __name__ == "__main__":  # pragma: no cover
    main()
