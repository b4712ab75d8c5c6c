"""Export PyTorch models to deployable files: one entry point per format, graph passes in ``passes``."""

from edgekit.export.onnx_export import DEFAULT_OPSET, DEFAULT_SHUFFLE_LOWERING, export_onnx
from edgekit.export.result import ExportResult, PassRecord, ShuffleRecord

__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_SHUFFLE_LOWERING",
    "ExportResult",
    "PassRecord",
    "ShuffleRecord",
    "export_onnx",
]
