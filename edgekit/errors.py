"""The errors edgekit raises.

Every error a user can cause is an ``EdgekitError`` whose message is one line that names the problem and
the fix. The CLI prints that line and exits non-zero; Python callers catch the subclass they care about.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Base of every user-facing edgekit error. ``exit_code`` is what the CLI exits with."""

    exit_code = 2


class UnknownModelError(EdgekitError):
    """A model name or ``file.py:factory`` spec that does not resolve to a model."""


class UserModelError(EdgekitError):
    """A user's model factory that could not be imported, raised, or returned something else."""


class WeightsError(EdgekitError):
    """A weights file that is missing, not a state dict, or does not fit the model."""


class DownloadError(EdgekitError):
    """A user-triggered download that failed (offline, HTTP error, checksum mismatch)."""


class DataError(EdgekitError):
    """Input data (an image folder, an input shape) that cannot be used."""


class ModelFileError(EdgekitError):
    """An exported model file (.onnx/.tflite) that is missing, truncated or corrupt."""


class ExportError(EdgekitError):
    """An export step that failed."""


class OutputError(EdgekitError):
    """An output location that cannot be written."""


class ParityError(EdgekitError):
    """Parity check failed: the exported model does not compute what the reference computes."""

    exit_code = 1


class DeviceError(EdgekitError):
    """A benchmark target (adb device, ssh board) that is missing, refused, lost, or failed a step.

    The message starts with the target (``adb:SERIAL``, ``ssh:USER@HOST``) and the step that failed.
    """


class DeviceTimeoutError(DeviceError):
    """A step on a benchmark target that ran past its time limit (``--timeout``)."""


class DeviceUnresponsiveError(DeviceTimeoutError):
    """A device that stopped answering: its target asks it nothing more, so every later step fails at once."""
