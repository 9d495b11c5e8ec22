"""What `supcon eval` computes and how: :class:`EvalOptions` (the evaluation workflows share it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..checks import check_int
from ..eval.corruptions import CORRUPTIONS, SEVERITIES
from ..eval.embeddings import EMBEDDINGS
from ..eval.knn import KNN_K, KNN_TEMPERATURE

NO_FLAG = {"flag": None}  # a setting of the Python API only, not a command-line flag
RUN_ONLY = ("data", "data_dir", "reference")  # fields only `supcon eval` takes (of one run)


@dataclass(frozen=True)
class EvalOptions:
    """What `supcon eval` computes and how; each field is also a flag of the command line
    (:mod:`supcon.command_line`: ``knn_k`` is ``--knn-k``, ``seed`` is ``--eval-seed``), but for
    the settings marked ``NO_FLAG``.

    Raises:
        ValueError: unknown corruptions, severities outside 1..5, or a count, k or temperature
            out of range (the message names the field).
    """

    data: str | None = None
    """Another data set (name or folder): transfer, by a new linear head on the frozen encoder;
    None = the run's own data."""
    data_dir: str | None = None
    """Where that data set's files are; None = the run's data.data_dir, else $SUPCON_DATA, the
    Debian path, then a download."""
    reference: str | None = None
    """Run folder (same data set) that mCE and relative mCE are normalised by; None = no mCE."""
    corruption_samples: int = 2000
    """Size of the seeded test subsample the corruptions are applied to."""
    corruptions: tuple[str, ...] | None = None
    """Corruption names; None = all 16, () = no robustness evaluation."""
    severities: tuple[int, ...] = SEVERITIES
    """Corruption severities, in 1..5."""
    knn_k: int = KNN_K
    """Neighbours of the kNN classifier."""
    knn_temperature: float = KNN_TEMPERATURE
    """Temperature of the kNN classifier's weights."""
    embedding: str = "tsne"
    """2-D embedding plot: tsne, umap (needs umap-learn) or none; never chosen by what is installed."""
    embedding_samples: int = 2000
    """Test points in the embedding plot."""
    tsne_iter: int = field(default=1000, metadata=NO_FLAG)
    gradients: bool = field(default=True, metadata=NO_FLAG)
    """The gradient analysis (contrastive runs on their own data)."""
    gradient_batch: int = field(default=64, metadata=NO_FLAG)
    seed: int = field(default=0, metadata={"flag": "--eval-seed"})
    """Seed of the subsamples and corruptions (compare and study: the base; the runs of training
    seed k are evaluated with this + k)."""
    batch_size: int = field(default=500, metadata=NO_FLAG)
    device: str = "auto"
    """auto, cpu or cuda (for the evaluation)."""

    def __post_init__(self) -> None:
        names = self.corruptions or ()
        unknown = [c for c in names if c not in CORRUPTIONS]
        checks = [
            (not unknown, f"corruptions: unknown {unknown}; known: {', '.join(CORRUPTIONS)}"),
            (all(s in SEVERITIES for s in self.severities) and len(self.severities) > 0,
             f"severities must be values in 1..5, got {list(self.severities)}"),
            (self.knn_temperature > 0, f"knn_temperature must be > 0, got {self.knn_temperature}"),
            (self.embedding in (*EMBEDDINGS, "none"),
             f"embedding must be one of {', '.join((*EMBEDDINGS, 'none'))}, got {self.embedding!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for name, value, low in (("corruption_samples", self.corruption_samples, 1), ("knn_k", self.knn_k, 1),
                                 ("embedding_samples", self.embedding_samples, 4),
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
