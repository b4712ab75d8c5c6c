"""The interface every benchmark target implements (host, adb, ssh), so one orchestrator drives them all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from edgekit.android_bench.results import BenchConfig, BenchRun, DeviceFacts


class Target(ABC):
    """A place a model can be benchmarked.

    Lifecycle, driven by the orchestrator: ``facts()`` once, ``prepare(model)`` once per model file (push
    model and tools), ``run(config)`` per configuration, ``temperature_c()`` between configurations when
    the device exposes thermal zones, ``cleanup()`` always (also after a failure). Methods raise
    ``edgekit.errors.EdgekitError`` subclasses whose message names the device and the step.
    """

    name: str  # "host", "adb:SERIAL", "ssh:USER@HOST"

    @abstractmethod
    def facts(self) -> DeviceFacts: ...

    @abstractmethod
    def prepare(self, model: Path) -> None: ...

    @abstractmethod
    def run(self, config: BenchConfig, *, op_profile: bool = False, timeout_s: float | None = None) -> BenchRun: ...

    def temperature_c(self) -> float | None:
        return None

    def accelerators(self) -> list[str]:
        """The ``--accelerator`` values this target's tool supports for the prepared model."""
        return ["cpu"]

    @abstractmethod
    def cleanup(self) -> None: ...

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()
