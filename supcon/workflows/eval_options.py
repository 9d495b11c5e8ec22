"""What `supcon eval` computes and how: :class:`EvalOptions` (the evaluation workflows share it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..checks import check_int
from ..eval.corruptions import CORRUPTIONS, SEVERITIES
from ..eval.embeddings import EMBEDDINGS


@dataclass(frozen=True)
class EvalOptions:
    """What `supcon eval` computes and how (defaults are the CLI's).

    Raises:
        ValueError: unknown corruptions, severities outside 1..5, or a count, k or temperature
            out of range (the message names the CLI option).
    """

    data: str | None = None
    """Transfer target (name or folder); None = the run's own data set."""
    data_dir: str | None = None
    reference: str | None = None
    """Run folder of the mCE reference (same data set as the run); None = no mCE."""
    corruption_samples: int = 2000
    """Size of the seeded test subsample the corruptions are applied to."""
    corruptions: tuple[str, ...] | None = None
    """Corruption names; None = all 16, () = skip the robustness evaluation."""
    severities: tuple[int, ...] = SEVERITIES
    knn_k: int = 200
    knn_temperature: float = 0.1
    embedding: str = "tsne"
    """tsne, umap (needs umap-learn) or none; never chosen by what is installed."""
    embedding_samples: int = 2000
    tsne_iter: int = 1000
    gradients: bool = True
    """The gradient analysis (contrastive runs on their own data)."""
    gradient_batch: int = 64
    seed: int = 0
    batch_size: int = 500
    device: str = "auto"

    def __post_init__(self) -> None:
        names = self.corruptions or ()
        unknown = [c for c in names if c not in CORRUPTIONS]
        checks = [
            (not unknown, f"--corruptions: unknown {unknown}; known: {', '.join(CORRUPTIONS)}"),
            (all(s in SEVERITIES for s in self.severities) and len(self.severities) > 0,
             f"--severities must be values in 1..5, got {list(self.severities)}"),
            (self.knn_temperature > 0, f"--knn-temperature must be > 0, got {self.knn_temperature}"),
            (self.embedding in (*EMBEDDINGS, "none"),
             f"--embedding must be one of {', '.join((*EMBEDDINGS, 'none'))}, got {self.embedding!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for name, value, low in (("--corruption-samples", self.corruption_samples, 1), ("--knn-k", self.knn_k, 1),
                                 ("--embedding-samples", self.embedding_samples, 4),
                                 ("gradient_batch", self.gradient_batch, 2)):
            check_int(name, value, low=low)

    @property
    def corruption_names(self) -> list[str]:
        """The corruptions to run, in table order ([] when skipped)."""
        return list(CORRUPTIONS) if self.corruptions is None else list(self.corruptions)

    def settings(self) -> dict[str, Any]:
        """What an existing eval.json must match to be reused (everything but the device)."""
        out = asdict(self)
        out.pop("device")
        out["corruptions"] = self.corruption_names
        out["severities"] = list(self.severities)
        out["reference"] = str(Path(self.reference).resolve()) if self.reference else None
        return out
