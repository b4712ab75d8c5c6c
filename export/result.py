"""What an export did, as a plain dataclass that serialises to the export report (``<model>.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class ShuffleRecord:
    """One channel shuffle found in the exported graph and how it was lowered."""

    output: str
    channels: int
    groups: int
    spelling: str
    lowering: str


@dataclass
class PassRecord:
    name: str
    changed: int
    details: list[str] = field(default_factory=list)


@dataclass
class ExportResult:
    """Everything an export wrote and measured; ``report_path`` holds this record as JSON."""

    KIND: ClassVar[str] = "export"  # in its JSON with VERSION (report.to_json); edgekit report reads by it
    VERSION: ClassVar[int] = 1

    model: str
    format: str
    precision: str
    path: str
    report_path: str
    file_size: int
    file_sha256: str
    input_shape: tuple[int, ...]
    weights_source: str
    weights_sha256: str
    opset: int | None
    shuffle_lowering: str
    versions: dict[str, str]
    op_histogram: dict[str, int]
    shuffles: list[ShuffleRecord]
    passes: list[PassRecord]
    parity: Any | None = None  # ParityReport, or None when the check was skipped
    seconds: dict[str, float] = field(default_factory=dict)
    # What the file takes (edgekit.input_contract.InputContract as a dict) and one line on feeding and reading it
    input_contract: dict | None = None
    usage: str | None = None
    # the inputs after the image (edgekit.input_contract.ExtraInputInfo as dicts): float32, fed as they are
    extra_inputs: list[dict] = field(default_factory=list)
    # TFLite only
    layout_transposes: int | None = None
    xnnpack_partitions: int | None = None
    io: str | None = None  # the input tensor's type: "uint8", "int8" or "float32"
    input_quantization: dict | None = None  # {"scale": s, "zero_point": z}: real = s * (q - z)
    output_quantization: dict | None = None
    calibration: str | None = None
    notes: list[str] = field(default_factory=list)
    # int8 ONNX only: how it was quantized (see edgekit.export.onnx_int8)
    calib_method: str | None = None
    reduce_range: bool | None = None
    target_cpu: str | None = None
