"""TrainingInterrupted lives apart from the trainer so that the CLI can catch it without importing torch."""
from __future__ import annotations

import signal
from pathlib import Path


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving `checkpoint` (None if nothing could be saved)."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        self.signum, self.checkpoint = int(signum), checkpoint
        name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
        where = f"; resumable checkpoint: {checkpoint}" if checkpoint else ""
        super().__init__(f"training interrupted by {name}{where}")
