"""Run metrics: one JSON object per line in ``metrics.jsonl`` plus TensorBoard scalars."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..run_folder import METRICS, TENSORBOARD


class MetricsLogger:
    """Append-only metrics sink. Disabled loggers (non-main ranks) accept and drop everything."""

    def __init__(self, folder: str | Path | None, tensorboard: bool = True) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._writer = None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.folder / TENSORBOARD))

    def log(self, stage: str, step: int, metrics: dict[str, Any]) -> None:
        """Append ``{"stage", "step", "time", **metrics}`` to ``metrics.jsonl``; numeric metrics
        also go to TensorBoard as ``<stage>/<key>`` at ``step``."""
        if self.folder is None:
            return
        record = {"stage": stage, "step": step, "time": round(time.time(), 3), **metrics}
        with open(self.folder / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(f"{stage}/{key}", value, step)

    def close(self) -> None:
        """Flush and close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
