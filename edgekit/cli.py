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
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@weights_option
@pretrained_option
@shape_option
@click.option("--output", "output_dir", type=click.Path(file_okay=False), default="edgekit-out",
              show_default=True, help="Directory for the model file and its report.")
@click.option("--shuffle", "shuffle_lowering", default=None, metavar="LOWERING",
              help="Channel-shuffle lowering: reshape, fused or concat (default: the fastest measured).")
@click.option("--opset", type=int, default=None, help="ONNX opset (default 17).")
@click.option("--no-check", is_flag=True, help="Skip the parity check (and keep the file even if it is wrong).")
@data_option
@samples_option
@click.option("--json", "as_json", is_flag=True, help="Print the export report as JSON on stdout.")
@_one_line_errors
def export_command(model, fmt, weights, pretrained, input_shape, output_dir, shuffle_lowering, opset, no_check,
                   data, samples, as_json) -> None:
    """Export a model (default shufflenet_v2_x1_0) and prove parity with PyTorch."""
    from edgekit.export import DEFAULT_OPSET, DEFAULT_SHUFFLE_LOWERING, export_onnx
    from edgekit.report import render_export, to_json

    result = export_onnx(
        model or "shufflenet_v2_x1_0",
        weights=weights,
        pretrained=pretrained,
        input_shape=input_shape,
        output_dir=output_dir,
        shuffle_lowering=shuffle_lowering or DEFAULT_SHUFFLE_LOWERING,
        opset=opset or DEFAULT_OPSET,
        check=not no_check,
        data=data,
        samples=samples,
        progress=_progress,
    )
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


if __name__ == "__main__":  # pragma: no cover
    main()
