"""edgekit's provenance record inside exported files, so ``edgekit check FILE`` can rebuild the reference.

Only facts that do not depend on the machine are stored (no paths, no timestamps): the export stays
byte-deterministic and a shipped file leaks nothing about where it was built.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.errors import ModelFileError

PREFIX = "edgekit."


def onnx_metadata_props(fields: dict[str, str]) -> list[tuple[str, str]]:
    """The (key, value) pairs to store as ONNX metadata_props, in a fixed order."""
    return [(PREFIX + key, str(fields[key])) for key in sorted(fields)]


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
        from edgekit.export.tflite.writer import read_tflite_metadata

        try:
            fields = read_tflite_metadata(path.read_bytes())
        except Exception as exc:  # flatbuffers raises struct/index errors on damaged files
            raise ModelFileError(
                f"{path} is not a readable TFLite file ({exc.__class__.__name__}); it may be truncated: export it again"
            ) from None
        return {key: value if isinstance(value, str) else json.dumps(value) for key, value in fields.items()}
    return {}


def with_metadata_fields(content: bytes, suffix: str, fields: dict[str, str]) -> bytes:
    """``content`` (an .onnx or .tflite file's bytes) with ``fields`` added to its edgekit metadata.

    Only the metadata changes: graphs, weights and every other byte of meaning stay as they were, so a
    parity proven on ``content`` holds for the result. Deterministic for the same input.
    """
    if suffix == ".onnx":
        import onnx

        model = onnx.load_from_string(content)
        keep = [(p.key, p.value) for p in model.metadata_props if p.key[len(PREFIX):] not in fields]
        del model.metadata_props[:]
        merged = dict(keep) | dict(onnx_metadata_props(fields))
        for key in sorted(merged):
            model.metadata_props.add(key=key, value=merged[key])
        return model.SerializeToString()
    if suffix == ".tflite":
        from edgekit.export.tflite.writer import with_tflite_metadata

        return with_tflite_metadata(content, fields)
    raise ValueError(f"no edgekit metadata in {suffix!r} files")


#: The metadata key under which an export records the parity it proved (``check`` compares against it).
EXPORT_PARITY_KEY = "export_parity"


def export_parity_fields(parity) -> dict[str, str]:
    """The parity an export proved, as metadata: inputs used and each output's cosine and SQNR (rounded, so
    the file stays byte-deterministic on one machine)."""
    summary = {
        "data": parity.data,
        "samples": parity.samples,
        "precision": parity.precision,
        "outputs": {o.name: {"cosine": round(o.cosine, 6), "sqnr_db": round(min(o.sqnr_db, 999.0), 2)}
                    for o in parity.outputs},
    }
    return {EXPORT_PARITY_KEY: json.dumps(summary, sort_keys=True)}
