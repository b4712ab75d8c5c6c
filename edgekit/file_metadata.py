"""edgekit's provenance record inside exported files: its keys, and reading it back from .onnx and .tflite.

Exporters write the record (``edgekit.export.metadata``); runtimes, ``check``, ``eval``, ``analyze`` and
``--per-layer`` read it. Reading lives here, in a leaf that imports only ``edgekit.errors`` (ONNX and the
LiteRT schema are imported when a file of their kind is read), so no reader imports the export package.

Only facts that do not depend on the machine are stored (no paths, no timestamps): the export stays
byte-deterministic and a shipped file leaks nothing about where it was built.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.errors import ModelFileError

#: ONNX ``metadata_props`` keys of the record start with this; in .tflite files it is one metadata entry.
PREFIX = "edgekit."
#: The name of that .tflite metadata entry (a buffer holding a JSON object).
TFLITE_ENTRY = "edgekit"
#: The metadata key under which an export records the parity it proved (``check`` compares against it).
EXPORT_PARITY_KEY = "export_parity"


def read_metadata(path: str | Path) -> dict[str, str]:
    """Read edgekit's metadata from an exported file (empty dict when the file has none).

    Raises ModelFileError for a missing, empty or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}; pass the path of an exported .onnx or .tflite file")
    if path.stat().st_size == 0:
        raise ModelFileError(f"model file {path} is empty; export it again")
    if path.suffix == ".onnx":
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError and friends from protobuf
            raise ModelFileError(
                f"{path} is not a readable ONNX file ({exc.__class__.__name__}); it may be truncated: export it again"
            ) from None
        return {p.key[len(PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}
    if path.suffix == ".tflite":
        try:
            fields = read_tflite_metadata(path.read_bytes())
        except Exception as exc:  # flatbuffers raises struct/index errors on damaged files
            raise ModelFileError(
                f"{path} is not a readable TFLite file ({exc.__class__.__name__}); it may be truncated: export it again"
            ) from None
        return {key: value if isinstance(value, str) else json.dumps(value) for key, value in fields.items()}
    return {}


def read_tflite_metadata(content: bytes) -> dict:
    """The "edgekit" metadata entry of a .tflite file's bytes, as written by ``export.tflite.writer`` (empty
    when absent)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == TFLITE_ENTRY:
            buffer = model.Buffers(entry.Buffer())
            return json.loads(buffer.DataAsNumpy().tobytes().decode("utf-8"))
    return {}
