"""The ``edgekit`` command: parses flags, calls the Python API, prints results. Nothing else lives here."""

from __future__ import annotations

import functools
import sys

import click

from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.limits import MAX_THREADS
from edgekit.stdout_redirect import stdout_to_stderr


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
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP as edgekit.stop_signals.Stopped
            click.echo(f"edgekit: {exc or 'interrupted'}", err=True)
            sys.exit(getattr(exc, "exit_code", 130))

    return wrapper


def _parse_shapes(_ctx, _param, values):
    """``--input-shape`` given once per model input: None, or the NCHW image's shape and then the others'."""
    if not values:
        return None
    from edgekit.models import parse_input_shape, parse_tensor_shape

    try:
        image = parse_input_shape(values[0])
        return (image, *(parse_tensor_shape(v, image[0]) for v in values[1:]))
    except EdgekitError as exc:
        raise click.BadParameter(str(exc)) from None


def _split_shapes(shapes):
    """``_parse_shapes``'s result as ``(image shape, the further inputs' shapes)``: ``(None, None)`` when none was
    given (the further inputs then come from where the image's does)."""
    return (shapes[0], tuple(shapes[1:])) if shapes else (None, None)


def _image_shape(shapes, command: str):
    """The one input shape of a command that takes one-input models (UsageError for more)."""
    image, extra = _split_shapes(shapes)
    if extra:
        raise click.UsageError(f"edgekit {command} takes models with one image input; pass --input-shape once")
    return image


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
def main() -> None:
    """edgekit: take a PyTorch CNN to an Android app — export, quantize, prove parity, profile."""
    from edgekit.stop_signals import raise_on_stop_signals

    # `kill` and a closed terminal unwind like Ctrl-C, so an export removes its temporary files.
    click.get_current_context().call_on_close(raise_on_stop_signals())


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
@_one_line_errors
def models_command(as_json: bool) -> None:
    """List the reference models with parameters, multiply-adds and input size."""
    from edgekit.model_catalog import read_catalog
    from edgekit.report import render_models, to_json

    listed = None if as_json else read_catalog()  # the table needs no torch; the JSON carries every field
    if listed is None:
        from edgekit.models import list_models

        with stdout_to_stderr():
            listed = list_models()
    click.echo(to_json(listed) if as_json else render_models(listed), nl=not as_json)


model_option = click.option(
    "--model", "model", default=None, metavar="NAME|FILE.py:FACTORY|MODULE:FACTORY",
    help="Registry name (see `edgekit models`) or a factory returning an nn.Module. Without --weights, a factory's "
         "model whose BatchNorm layers never measured statistics (untrained) gets edgekit's seeded init with "
         "BatchNorm statistics measured on bundled photos, as registry models do (init:seed=0,bn-calibrated); a "
         "factory that loads trained weights itself, or a model without BatchNorm, keeps what it built.",
)
weights_option = click.option(
    "--weights", type=click.Path(dir_okay=False), default=None,
    help="A torchvision-format state dict (.pth), loaded with weights_only=True.",
)
pretrained_option = click.option(
    "--pretrained", is_flag=True, help="Download the published ImageNet weights (explicit; never automatic).",
)
shape_option = click.option(
    "--input-shape", "input_shapes", callback=_parse_shapes, multiple=True, metavar="N,C,H,W",
    help="Input shape for user models, e.g. 1,3,224,224. A model whose forward takes several inputs gets one "
         "per input, in order, the NCHW image first: --input-shape 1,3,64,64 --input-shape 1,16 (the others are "
         "float32 fed as they are, batch first).",
)
extra_inputs_option = click.option(
    "--extra-inputs", "extra_data", type=click.Path(dir_okay=False), default=None, metavar="FILE.npz",
    help="Values for a model's inputs after the image: one float array per input, named after its forward argument, "
         "rows first (row i goes with image i; read without pickles). Default: seeded N(0, 1) values; --int8 "
         "needs them (it calibrates those inputs on them).",
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
@click.option("--int8", is_flag=True, help="int8: TFLite full-integer, or ONNX QDQ (per-channel weights, int8 "
              "activations).")
@click.option("--calib-method", type=click.Choice(["minmax", "percentile", "mse"]), default=None,
              help="int8 calibration, both formats: minmax|percentile|mse (default percentile, the best measured).")
@click.option("--no-equalize", is_flag=True, help="int8: skip cross-layer equalization of pointwise/depthwise "
              "channel ranges.")
@click.option("--no-optimal-rounding", is_flag=True, help="int8: round weights to the nearest level instead of "
              "by GPTQ (which minimises each layer's output error on the calibration images).")
@click.option("--no-bias-correction", is_flag=True, help="int8: keep the biases as they are (no correction of "
              "the mean shift weight rounding causes).")
@click.option("--no-float-first-layers", is_flag=True, help="int8: quantize every layer, even where the first "
              "layers kept in float would bring the file to the cosine goal (faster, less accurate).")
@click.option("--input", "input_kind", type=click.Choice(["bytes", "pixels", "normalized"]), default="bytes",
              show_default=True, help="What the file takes, for every format and precision: bytes (uint8 camera "
              "pixels 0..255), pixels (float in [0, 1]) or normalized (float (pixel - mean) / std). For bytes and "
              "pixels the model normalises inside (folded into its first convolution).")
@click.option("--mean", default=None, metavar="M[,M,M]", help="Your model's input mean, in [0, 1] pixel units "
              "(default ImageNet's, with a notice); registry models carry their own.")
@click.option("--std", default=None, metavar="S[,S,S]", help="Your model's input std, with --mean.")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False), default=None,
              help="TFLite: a text file with one class name per line, in output order, packed into the file's "
                   "metadata (default: the registry model's labels).")
@click.option("--no-normalization", is_flag=True, help="Your model takes pixels in [0, 1] as they are "
              "(mean 0, std 1).")
@click.option("--target-cpu", default=None, metavar="host|vnni|avx2|arm64|arm64-dotprod|...",
              help="ONNX int8: the CPU the model will run on (default this one); picks 7-bit weights where "
                   "its int8 kernels lack dot-product instructions.")
@click.option("--calib", default=None, metavar="DIR|N|digits[:N]",
              help="int8 calibration: an image folder, N bundled photo crops, or digits[:N] (the digits training "
                   "split). Default: the model's own training data, else 100 bundled crops the parity check never "
                   "uses; the same images for TFLite and ONNX.")
@click.option("--io", "io", type=click.Choice(["uint8", "int8", "float"]), default=None,
              help="TFLite int8 files: the input/output tensor type. uint8 (default with --input bytes: what "
                   "MediaPipe and Android image APIs take), int8 (pixel - 128, no edge ops) or float (default "
                   "otherwise).")
@weights_option
@pretrained_option
@shape_option
@extra_inputs_option
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
def export_command(model, fmt, int8, calib_method, no_equalize, no_optimal_rounding, no_bias_correction,
                   no_float_first_layers,
                   input_kind, mean, std, labels_file, no_normalization, target_cpu, calib, io, weights,
                   pretrained, input_shapes, extra_data, output_dir, shuffle_lowering, opset, no_check, data, samples,
                   as_json) -> None:
    """Export a model (default shufflenet_v2_x1_0) to ONNX or TFLite and prove parity with PyTorch."""
    from edgekit.data.inputs import check_data_source
    from edgekit.export.request import ExportRequest, Int8Recipe, export
    from edgekit.input_contract import parse_floats
    from edgekit.report import render_export, to_json

    if no_normalization and (mean or std):
        raise click.UsageError("--no-normalization and --mean/--std exclude each other")
    mean, std = ((0.0,), (1.0,)) if no_normalization else (parse_floats(mean, "--mean"), parse_floats(std, "--std"))
    recipe = Int8Recipe(calib=calib, calib_method=calib_method, equalize=not no_equalize,
                        optimal_rounding=not no_optimal_rounding, bias_correction=not no_bias_correction,
                        float_first_layers=not no_float_first_layers, target_cpu=target_cpu, io=io)
    if not int8 and recipe != Int8Recipe():
        raise click.UsageError("--calib, --calib-method, --no-equalize, --no-optimal-rounding, --no-bias-correction, "
                               "--no-float-first-layers, --target-cpu and --io apply to --int8 exports")
    image_shape, extra_shapes = _split_shapes(input_shapes)
    request = ExportRequest(
        model=model or "shufflenet_v2_x1_0", format=fmt, int8=recipe if int8 else None, input_kind=input_kind,
        weights=weights, pretrained=pretrained, input_shape=image_shape, extra_input_shapes=extra_shapes or (),
        extra_data=extra_data, mean=mean, std=std,
        labels=_labels(labels_file, fmt), output_dir=output_dir,
        shuffle_lowering=shuffle_lowering, opset=opset, check=not no_check, data=data, samples=samples,
    )
    check_data_source(data)  # before seconds of export work, not after them
    with stdout_to_stderr():
        result = export(request, progress=_progress)
    if result.usage:
        _progress(f"use: {result.usage}")
    click.echo(to_json(result) if as_json else render_export(result), nl=not as_json)


@main.command("check")
@click.argument("exported", type=click.Path())
@model_option
@weights_option
@pretrained_option
@shape_option
@extra_inputs_option
@data_option
@samples_option
@click.option("--threads", type=click.IntRange(min=1, max=MAX_THREADS), default=1, show_default=True)
@click.option("--per-layer", is_flag=True,
              help="int8 ONNX/TFLite: SQNR/cosine of every quantized tensor against the fp32 model, in graph order.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="With --per-layer: also write the report with a plot of SQNR per layer to this file.")
@click.option("--calib", default=None, metavar="DIR",
              help="With --per-layer: the calibration folder an equalized file was exported with.")
@click.option("--json", "as_json", is_flag=True, help="Print the parity report as JSON on stdout.")
@_one_line_errors
def check_command(exported, model, weights, pretrained, input_shapes, extra_data, data, samples, threads, per_layer,
                  html_path, calib, as_json) -> None:
    """Prove an exported .onnx/.tflite computes what the PyTorch model computes (exit 1 if not)."""
    if (html_path or calib) and not per_layer:
        raise click.UsageError("--html and --calib apply to --per-layer")
    from edgekit.data.inputs import check_data_source

    check_data_source(data)
    if per_layer:
        from edgekit.fileio import ensure_writable_dir, staged_files
        from edgekit.per_layer import per_layer_errors
        from edgekit.report import per_layer_html, render_per_layer, to_json

        if html_path:  # fail before a minute of work, not after it
            from pathlib import Path

            from edgekit.errors import OutputError

            try:
                ensure_writable_dir(Path(html_path).parent)
            except OutputError:
                raise OutputError(f"cannot write --html {html_path}: its folder cannot be created or written; pass "
                                  "--html with a writable path") from None
        with stdout_to_stderr():
            layers = per_layer_errors(exported, model=model, weights=weights, pretrained=pretrained,
                                      input_shape=_image_shape(input_shapes, "check --per-layer"), data=data,
                                      samples=samples, threads=threads,
                                      calib=calib, progress=_progress)
            if html_path:
                with staged_files() as staged:
                    staged.write_text(html_path, per_layer_html(layers))
                    staged.commit()
                _progress(f"wrote {html_path}")
        click.echo(to_json(layers) if as_json else render_per_layer(layers), nl=not as_json)
        return
    from edgekit.check import check_exported_file
    from edgekit.report import render_parity, to_json

    image_shape, extra_shapes = _split_shapes(input_shapes)

    with stdout_to_stderr():
        report = check_exported_file(
            exported, model=model, weights=weights, pretrained=pretrained, input_shape=image_shape,
            extra_input_shapes=extra_shapes, extra_data=extra_data, data=data,
            samples=samples, threads=threads, progress=_progress,
        )
    click.echo(to_json(report) if as_json else render_parity(report), nl=not as_json)
    if not report.passed:
        sys.exit(1)


def _labels(labels_file, fmt: str) -> list[str] | None:
    """--labels read for a TFLite export; for another format an empty list, which the request refuses."""
    if labels_file is None:
        return None
    if fmt != "tflite":
        return []
    from edgekit.input_contract import read_labels

    return read_labels(labels_file)


def _int_list(_ctx, _param, value):
    try:
        values = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not values or any(not 1 <= v <= MAX_THREADS for v in values):
        raise click.BadParameter(f"{value!r}: give thread counts from 1 to {MAX_THREADS} such as 1,2,4")
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
              help="Seconds a configuration may take (adb/ssh default 60). On the host the timed loop stops "
                   "there and keeps its partial result; on a device the run is killed there and the "
                   "configurations that finished are kept.")
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
    if target_spec != "host":  # host targets run the file once in isolation when they prepare it
        from edgekit.runtimes.vetting import validate_model_file

        validate_model_file(model_file)
    options = {}
    if target_spec != "host":
        options = {"benchmark_binary": benchmark_binary, "download_binary": download_binary,
                   "progress": _progress}
    with stdout_to_stderr():
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

    with stdout_to_stderr():
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
@click.option("--threads", type=click.IntRange(min=1, max=MAX_THREADS), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the accuracy report as JSON on stdout.")
@_one_line_errors
def eval_command(model_or_file, data, compare, weights, input_shapes, batch_size, threads, as_json) -> None:
    """Top-1/top-5 accuracy and per-class confusion of a model or exported file on labelled images."""
    from edgekit.evaluate import evaluate
    from edgekit.report import render_eval, to_json

    with stdout_to_stderr():
        report = evaluate(model_or_file, data, compare=compare, weights=weights,
                          input_shape=_image_shape(input_shapes, "eval"),
                          batch_size=batch_size, threads=threads, progress=_progress)
    click.echo(to_json(report) if as_json else render_eval(report), nl=not as_json)


@main.command("analyze")
@click.argument("model", metavar="MODEL_OR_FILE")
@shape_option
@click.option("--profile", "profile", type=click.Path(dir_okay=False), default=None, metavar="BENCH.json",
              help="An op profile (bench.json of `edgekit bench --op-profile`): predicted vs measured shares.")
@click.option("--measure", "measure_target", default=None, metavar="TARGET",
              help="Profile the .onnx file on TARGET (e.g. host) first and compare with it.")
@click.option("--g1-excess", type=click.FloatRange(min=0), default=0.15, show_default=True,
              help="Flag 1x1 convs whose MAC is this fraction above the G1 bound.")
@click.option("--layers", "max_layers", type=click.IntRange(min=0), default=20, show_default=True,
              help="Layers to list (most memory access first); 0 lists all.")
@click.option("--output", "output_dir", type=click.Path(file_okay=False), default=None,
              help="Also write analysis.json and analysis.md here (for `edgekit report`).")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON on stdout.")
@_one_line_errors
def analyze_command(model, input_shapes, profile, measure_target, g1_excess, max_layers, output_dir, as_json) -> None:
    """Per-layer mult-adds, memory access cost (MAC) and the ShuffleNetV2 guidelines G1-G4 for a registry
    model, a FILE.py:FACTORY, or an exported .onnx/.tflite file."""
    from pathlib import Path

    from edgekit.analysis import analyze
    from edgekit.report import analysis_markdown, render_analysis, to_json

    if profile and measure_target:
        raise click.UsageError("pass either --profile or --measure, not both")
    if measure_target:
        if not str(model).lower().endswith(".onnx"):
            raise click.UsageError("--measure profiles .onnx files (LiteRT's Python API has no op profiler); "
                                   "for other targets pass --profile with a bench.json")
        from edgekit.android_bench import make_targets, run_benchmark

        _progress(f"profiling {model} on {measure_target}")
        with stdout_to_stderr():
            profile = run_benchmark(model, make_targets(measure_target)[0], op_profile=True, runs=20,
                                    min_secs=0.5, progress=_progress)
    with stdout_to_stderr():
        result = analyze(model, input_shape=_image_shape(input_shapes, "analyze"), profile=profile,
                         g1_excess=g1_excess)
    if output_dir:
        from edgekit.fileio import ensure_writable_dir

        out = ensure_writable_dir(output_dir)
        stem = Path(str(result.source)).name.replace(".", "_")
        (out / f"analysis_{stem}.json").write_text(to_json(result))
        (out / f"analysis_{stem}.md").write_text(analysis_markdown(result))
        _progress(f"wrote {out / f'analysis_{stem}.json'}")
    click.echo(to_json(result) if as_json else render_analysis(result, max_layers or None), nl=not as_json)


def _multipliers(_ctx, _param, value):
    try:
        values = [int(v.strip().lstrip("x")) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: give widths such as 1,2,4") from None
    if not values or any(v not in (1, 2, 4) for v in values):
        raise click.BadParameter(f"{value!r}: widths are among 1, 2, 4 (the paper's x1, x2, x4)")
    return values


@main.command("guidelines")
@click.option("--target", "target_spec", default="host", show_default=True, metavar="host|adb[:SERIAL]|ssh:USER@HOST",
              help="Where to time the networks.")
@click.option("--spatial", type=click.IntRange(min=1), default=None, metavar="N",
              help="Input height and width of every network (default 28).")
@click.option("--widths", callback=_multipliers, default="1,2,4", show_default=True, metavar="1,2,4",
              help="Width columns: the paper's x1, x2, x4 (G3/G4: its three c values).")
@click.option("--threads", type=click.IntRange(min=1, max=MAX_THREADS), default=1, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Interleaved timing rounds; each network keeps its best.")
@click.option("--min-secs", type=click.FloatRange(min=0), default=0.2, show_default=True,
              help="Minimum seconds of timed runs per network per round.")
@click.option("--format", "formats", type=click.Choice(["tflite", "onnx", "both"]), default="tflite",
              show_default=True, help="What to export (and time: the .tflite when made).")
@click.option("--output", "output_dir", type=click.Path(file_okay=False), default="edgekit-guidelines",
              show_default=True, help="Directory for the networks, guidelines.json and guidelines.md.")
@click.option("--json", "as_json", is_flag=True, help="Print the tables as JSON on stdout.")
@_one_line_errors
def guidelines_command(target_spec, spatial, widths, threads, rounds, min_secs, formats, output_dir, as_json) -> None:
    """Rebuild the ShuffleNetV2 guideline experiments (G1-G4), time them on TARGET, and print the paper's
    tables with the target's images/s beside the paper's ARM and GPU columns."""
    from edgekit.fileio import ensure_writable_dir
    from edgekit.guidelines import DEFAULT_SPATIAL, run_guidelines
    from edgekit.report import guidelines_markdown, render_guidelines, to_json

    with stdout_to_stderr():
        report = run_guidelines(
            target_spec, spatial=spatial or DEFAULT_SPATIAL, multipliers=widths, threads=threads, rounds=rounds,
            min_secs=min_secs, output_dir=output_dir,
            formats=("tflite", "onnx") if formats == "both" else (formats,), progress=_progress,
        )
    out = ensure_writable_dir(output_dir)
    (out / "guidelines.json").write_text(to_json(report))
    (out / "guidelines.md").write_text(guidelines_markdown(report))
    _progress(f"wrote {out / 'guidelines.json'} and {out / 'guidelines.md'}")
    click.echo(to_json(report) if as_json else render_guidelines(report), nl=not as_json)


@main.command("report")
@click.argument("run_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--output", "output_dir", type=click.Path(file_okay=False), default=None,
              help="Where to write report.html and report.md (default: DIR).")
@_one_line_errors
def report_command(run_dir, output_dir) -> None:
    """Render every result in DIR (export, parity, bench, analysis, guidelines JSON) as one self-contained
    HTML page and Markdown."""
    from edgekit.report import write_run_report

    with stdout_to_stderr():
        paths = write_run_report(run_dir, output_dir)
    for line in paths["skipped"]:
        _progress(f"not included: {line}")
    click.echo(f"wrote {paths['html']} and {paths['markdown']}")


if __name__ == "__main__":  # pragma: no cover
    main()
