"""What an exported file takes as input and gives as output: one declared contract per file.

Three input kinds, the same choice for every format and precision (``--input``):

- ``bytes``: the camera's 8-bit pixels, RGB (or gray) 0..255, as ``uint8``; the model applies mean/std.
  int8 TFLite files may take the same pixels as ``int8`` (``pixel - 128``, ``--io int8``), their fastest form.
- ``pixels``: float32 pixels in [0, 1] (``byte / 255``); the model applies mean/std.
- ``normalized``: float32 ``(pixels - mean) / std``, what the PyTorch model itself takes.

The contract is written into every file's metadata (``input_contract``) by the exporters, read back by
``edgekit.runtimes`` (which converts the normalised NCHW batches edgekit's own callers pass) and by
``edgekit.models.file_reference``, and described in one line by ``usage_line`` for the user. A leaf (it imports
only ``edgekit.errors``), so those readers do not import the export package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from edgekit.errors import ExportError

INPUT_KINDS = ("bytes", "pixels", "normalized")
DEFAULT_INPUT = "bytes"
#: int8 files' edge types (``--io``): ``uint8`` (bytes in, uint8 out: what MediaPipe and Android apps take),
#: ``int8`` (int8 at both ends: no QUANTIZE op at the edges), ``float`` (float32 in and out).
IO_TYPES = ("uint8", "int8", "float")
#: One step of an 8-bit pixel in the [0, 1] units the normalisation is defined in.
PIXEL_STEP = 1.0 / 255.0
METADATA_KEY = "input_contract"
#: the metadata key listing a file's inputs after the image (``ExtraInputInfo``, JSON)
EXTRA_INPUTS_KEY = "extra_inputs"
#: the most dimensions or elements a file's metadata may declare for a further input (more is damage)
_MAX_EXTRA_RANK, _MAX_EXTRA_DIMENSION = 6, 1 << 20


@dataclass(frozen=True)
class InputContract:
    """The declared input of one file.

    ``kind``: one of INPUT_KINDS. ``dtype``: the input tensor's type (``uint8``, ``int8``, ``float32``).
    ``layout``: ``NCHW`` or ``NHWC``; ``shape`` in that layout. ``mean``/``std``: the model's normalisation
    of pixels in [0, 1], per channel. ``scale``/``zero_point``: how integer input codes map to the kind's
    values (``value = scale * (code - zero_point)``), None for float input.
    """

    kind: str
    dtype: str
    layout: str
    shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float | None = None
    zero_point: int | None = None

    @property
    def channels(self) -> int:
        return int(self.shape[3] if self.layout == "NHWC" else self.shape[1])

    def to_metadata(self) -> str:
        """JSON for the file's metadata (deterministic key order)."""
        fields = asdict(self)
        fields["shape"] = list(self.shape)
        fields["mean"], fields["std"] = list(self.mean), list(self.std)
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_metadata(cls, text: str) -> InputContract:
        """Parse ``to_metadata``'s JSON; raises ValueError (or KeyError/TypeError) for anything else."""
        fields = json.loads(text)
        contract = cls(
            kind=str(fields["kind"]), dtype=str(fields["dtype"]), layout=str(fields["layout"]),
            shape=tuple(int(d) for d in fields["shape"]), mean=tuple(float(v) for v in fields["mean"]),
            std=tuple(float(v) for v in fields["std"]),
            scale=None if fields.get("scale") is None else float(fields["scale"]),
            zero_point=None if fields.get("zero_point") is None else int(fields["zero_point"]),
        )
        if contract.kind not in INPUT_KINDS or contract.layout not in ("NCHW", "NHWC") or len(contract.shape) != 4:
            raise ValueError(f"not an input contract: {text[:80]!r}")
        if len(contract.mean) != contract.channels or len(contract.std) != contract.channels or 0 in contract.std:
            raise ValueError("mean/std do not fit the input's channels")
        return contract

    def describe(self) -> str:
        """What to feed, in one phrase: e.g. ``uint8 NHWC 1x224x224x3: RGB bytes 0..255``."""
        dims = "x".join(str(d) for d in self.shape)
        color = "RGB" if self.channels == 3 else ("gray" if self.channels == 1 else f"{self.channels}-channel")
        if self.kind == "bytes":
            what = (f"{color} bytes 0..255" if self.dtype == "uint8" else f"{color} pixel - 128 "
                    "(the byte minus 128)")
            return f"{self.dtype} {self.layout} {dims}: {what}, no normalisation (the model applies mean/std)"
        if self.kind == "pixels":
            return f"{self.dtype} {self.layout} {dims}: {color} pixels in [0, 1] (byte / 255), no normalisation"
        values = ", ".join(f"{m:g}" for m in self.mean), ", ".join(f"{s:g}" for s in self.std)
        coded = "" if self.scale is None else f", quantized as {self.scale:.6g} * (q - {self.zero_point})"
        return (f"{self.dtype} {self.layout} {dims}: {color} (pixel/255 - mean) / std with mean ({values[0]}) "
                f"and std ({values[1]}){coded}")

    @property
    def takes_pixels(self) -> bool:
        """True when the input is pixels (``pixels`` as floats, ``bytes`` as codes of ``scale`` 1/255)."""
        return self.kind in ("pixels", "bytes")

    def normalization_options(self) -> tuple[list[float], list[float]] | None:
        """(mean, std) an app applies to 0..255 pixel values to get this input, as TFLite's metadata
        ``NormalizationOptions`` defines them; None for integer input (fed as bytes)."""
        if self.dtype != "float32":
            return None
        if self.kind == "pixels":
            return [0.0], [255.0]
        return [255.0 * m for m in self.mean], [255.0 * s for s in self.std]


@dataclass(frozen=True)
class ExtraInputInfo:
    """An input of a file after the image: float32 values fed as they are (no pixels, no normalisation).

    ``name``: the tensor's name in the file (the PyTorch ``forward`` argument it was). ``shape``: as the file
    takes it, in ``layout`` (``NHWC`` for a 4-D input of a TFLite file, ``NCHW`` for ONNX; None unless 4-D)."""

    name: str
    shape: tuple[int, ...]
    layout: str | None

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "layout": self.layout}

    def describe(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        return f"'{self.name}' float32 {self.layout + ' ' if self.layout else ''}{dims}"


def extra_inputs_to_metadata(extra: Sequence[ExtraInputInfo]) -> str:
    """JSON for the file's ``EXTRA_INPUTS_KEY`` (deterministic)."""
    return json.dumps([e.to_dict() for e in extra], sort_keys=True)


def extra_inputs_from_metadata(fields: dict[str, str]) -> list[ExtraInputInfo]:
    """The further inputs a file's metadata declares; empty when it declares none. Raises ValueError for a
    record that is not a list of well-formed entries (a file's metadata is untrusted data)."""
    text = fields.get(EXTRA_INPUTS_KEY)
    if not text:
        return []
    entries = json.loads(text)
    if not isinstance(entries, list):
        raise ValueError("extra_inputs is not a list")
    extra = []
    for entry in entries:
        name, shape, layout = entry["name"], entry["shape"], entry.get("layout")
        if not isinstance(name, str) or not isinstance(shape, list) or layout not in (None, "NCHW", "NHWC"):
            raise ValueError("malformed extra_inputs entry")
        dims = tuple(int(d) for d in shape)
        if not 1 <= len(dims) <= _MAX_EXTRA_RANK or not all(1 <= d <= _MAX_EXTRA_DIMENSION for d in dims):
            raise ValueError(f"extra input shape {dims} out of range")
        if layout is not None and len(dims) != 4:
            raise ValueError("a layout is for 4-D inputs")
        extra.append(ExtraInputInfo(name, dims, layout))
    return extra


def resolve_io(kind: str, io: str | None, int8: bool) -> str:
    """The input tensor type for ``kind`` and ``--io`` (int8 files only). Raises ``ExportError`` for a
    combination that cannot be (e.g. float ``bytes``)."""
    if kind not in INPUT_KINDS:
        raise ExportError(f"unknown --input {kind!r}; choose one of {', '.join(INPUT_KINDS)}")
    if io is not None and io not in IO_TYPES:
        raise ExportError(f"unknown --io {io!r}; choose one of {', '.join(IO_TYPES)}")
    if not int8:
        if io is not None:
            raise ExportError("--io applies to --int8 files; an fp32 file's input type follows --input")
        return "uint8" if kind == "bytes" else "float32"
    if io is None:
        io = "uint8" if kind == "bytes" else "float"
    if kind == "bytes" and io == "float":
        raise ExportError("--input bytes takes 8-bit pixels: use --io uint8 (0..255) or --io int8 (pixel - 128), "
                          "or --input pixels for float input")
    if kind != "bytes" and io == "uint8":
        raise ExportError(f"--io uint8 carries bytes: use --input bytes with it (not {kind})")
    return {"uint8": "uint8", "int8": "int8", "float": "float32"}[io]


def parse_floats(text: str | Sequence[float] | None, what: str) -> tuple[float, ...] | None:
    """``"0.5,0.5,0.5"`` -> floats (for ``--mean``/``--std``); None stays None. Raises ``ExportError``."""
    if text is None:
        return None
    parts = text.replace(" ", ",").split(",") if isinstance(text, str) else list(text)
    try:
        values = tuple(float(p) for p in parts if str(p).strip())
    except ValueError:
        raise ExportError(f"{what} {text!r} is not a list of numbers; pass e.g. {what} 0.5,0.5,0.5") from None
    if not values or not all(np.isfinite(values)):
        raise ExportError(f"{what} {text!r} is not a list of finite numbers")
    return values


def read_labels(path) -> list[str]:
    """Class names from a text file, one per line (blank lines at the end ignored). Raises ``ExportError``
    for a missing, unreadable, non-UTF-8 or empty file, or a blank label."""
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
        raise ExportError(f"cannot read --labels {path} ({reason}); pass a UTF-8 text file, one label per "
                          "line") from None
    labels = [line.strip() for line in text.rstrip("\n").split("\n")]
    if not labels or not all(labels):
        raise ExportError(f"--labels {path} has an empty label; give one non-empty class name per line")
    return labels


def usage_line(contract: InputContract, outputs: Sequence[dict], extra: Sequence[ExtraInputInfo] = ()) -> str:
    """One line: what to feed the file and how to read each output (``outputs``: dicts with ``name``,
    ``dtype``, ``shape`` and, for integer outputs, ``scale`` and ``zero_point``); ``extra``: the inputs after
    the image."""
    reads = []
    for out in outputs:
        dims = "x".join(str(d) for d in out["shape"])
        if out.get("scale") is not None:
            zero = int(out["zero_point"])
            shift = f"q - {zero}" if zero >= 0 else f"q + {-zero}"
            reads.append(f"'{out['name']}' {out['dtype']} {dims}, real = {out['scale']:.6g} * ({shift})")
        else:
            reads.append(f"'{out['name']}' {out['dtype']} {dims}")
    also = "".join(f", and {e.describe()} as it is" for e in extra)
    return f"feed {contract.describe()}{also}; read {', '.join(reads)}"
