"""What every export format shares: step timing, provenance fields, and publishing a checked file.

``publish`` stages the model file, proves parity on the staged copy, then writes the report (JSON and
HTML) and renames everything into place together; any failure leaves nothing behind, and so does Ctrl-C,
SIGTERM or SIGHUP under the CLI (see ``edgekit.stop_signals``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from edgekit.check import check_parity
from edgekit.errors import ParityError
from edgekit.export.metadata import export_parity_fields, with_metadata_fields
from edgekit.export.result import ExportResult
from edgekit.fileio import sha256_bytes, staged_files
from edgekit.progress import Progress
from edgekit.report import export_html, to_json
from edgekit.runtimes.vetting import trust_written
from edgekit.stop_signals import stop_signals_deferred


class StepClock:
    """Wall time per named step, for the export report."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(now - self._last, 3)
        self._last = now


def provenance(model: str, handle, *, weights, pretrained: bool, shuffle_lowering: str, precision: str,
               shuffles: int = 1) -> dict:
    """The metadata stored inside exported files, so ``edgekit check FILE`` can rebuild the reference.

    ``weights_kind``: ``file``, ``pretrained``, ``factory`` (whatever a user's factory built) or
    ``deterministic`` (a registry model's seeded initialisation); ``shuffle_lowering`` is ``none`` when the
    model has no channel shuffle (``shuffles`` found: 0)."""
    if weights:
        kind = "file"
    elif pretrained:
        kind = "pretrained"
    else:
        kind = "factory" if getattr(handle, "family", "") == "user" else "deterministic"
    return {
        "model": model,
        # the PyTorch reference's NCHW input; what the file itself takes is its ``input_contract``
        "reference_input_shape": ",".join(str(d) for d in handle.input_shape),
        "weights_kind": kind,
        "weights_sha256": handle.weights_sha256,
        "shuffle_lowering": shuffle_lowering if shuffles else "none",
        "precision": precision,
    }


def publish(
    content: bytes,
    model_path: Path,
    handle,
    make_result: Callable[..., ExportResult],
    *,
    clock: StepClock,
    check: bool,
    data,
    samples: int,
    say: Progress,
) -> ExportResult:
    """Write ``content`` to ``model_path`` with its report beside it (``<file>.json``-style names come from
    ``make_result``), after the parity check passes on the staged file. Raises ParityError on failure."""
    with staged_files() as staged:
        staged_model = staged.write_bytes(model_path, content)
        trust_written(content)  # edgekit made these bytes: its own check needs no isolated first run
        parity = None
        if check:
            say("checking parity against PyTorch")
            parity = check_parity(staged_model, handle, data=data, samples=samples, progress=say)
            clock.lap("parity")
            parity.file = str(model_path)  # it ran on the staged copy, which is about to take this name
            if not parity.passed:
                raise ParityError(
                    f"parity check failed ({'; '.join(parity.failures)}); nothing was written — "
                    "rerun with --no-check to keep the file for inspection"
                )
            # The file records what it proved, so a later `edgekit check` can tell a changed file from a good one.
            content = with_metadata_fields(content, model_path.suffix, export_parity_fields(parity))
            staged_model.write_bytes(content)
            trust_written(content)
        result = make_result(parity=parity, file_size=len(content), file_sha256=sha256_bytes(content))
        result.seconds = dict(clock.seconds)
        report_path = Path(result.report_path)
        staged.write_text(report_path, to_json(result))
        staged.write_text(report_path.with_suffix(".html"), export_html(result))
        with stop_signals_deferred():  # a `kill` between two renames would publish a model without its report
            staged.commit()
    return result
