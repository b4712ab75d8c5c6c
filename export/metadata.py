"""Writing edgekit's provenance record into exported files, so ``edgekit check FILE`` can rebuild the reference.

Its keys and reading it back live in the leaf ``edgekit.file_metadata`` (runtimes and ``check`` read it too);
``read_metadata``, ``PREFIX`` and ``EXPORT_PARITY_KEY`` are importable from here as well.
"""

from __future__ import annotations

import json

from edgekit.file_metadata import EXPORT_PARITY_KEY, PREFIX, read_metadata

__all__ = ["EXPORT_PARITY_KEY", "PREFIX", "export_parity_fields", "onnx_metadata_props", "read_metadata",
           "with_metadata_fields"]


def onnx_metadata_props(fields: dict[str, str]) -> list[tuple[str, str]]:
    """The (key, value) pairs to store as ONNX metadata_props, in a fixed order."""
    return [(PREFIX + key, str(fields[key])) for key in sorted(fields)]


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
