"""2-D embeddings of representations (t-SNE, or UMAP on request) and their scatter plot.

The method is always the caller's explicit choice (t-SNE by default): what is installed never
changes the picture a command draws."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from supcon.eval._plot import new_figure, save_png

EMBEDDINGS = ("tsne", "umap")


def umap_available() -> bool:
    """True when the optional ``umap-learn`` package can be imported."""
    return importlib.util.find_spec("umap") is not None


def embed_2d(
    features: Tensor | np.ndarray,
    method: str = "tsne",
    *,
    seed: int = 0,
    perplexity: float = 30.0,
    n_neighbors: int = 15,
    normalize: bool = True,
    pca_dim: int = 50,
    max_iter: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Project ``features [n, F]`` to 2-D for plotting.

    Args:
        features: representations, one row per sample.
        method: ``"tsne"`` (scikit-learn, the default) or ``"umap"`` (needs ``umap-learn``).
        seed: random state of the embedding, for reproducible plots.
        perplexity: t-SNE perplexity; lowered to ``(n - 1) / 3`` for small n.
        n_neighbors: UMAP neighbourhood size; capped at ``n - 1``.
        normalize: L2-normalise rows first, since the encoders are trained for cosine geometry.
        pca_dim: reduce to this many principal components first when F is larger (the usual
            speed-up before t-SNE; it keeps almost all the neighbourhood structure).
        max_iter: t-SNE optimisation steps (>= 250). t-SNE is exact for n <= 500 and
            Barnes-Hut beyond; a few thousand points is what a plot needs, so subsample first.
        on_progress: t-SNE only: called with ``(iterations done, max_iter)`` every 50
            iterations (read from scikit-learn's verbose output, which is not shown); it may stop
            short of ``max_iter`` when the optimisation converges.

    Returns:
        ``[n, 2]`` float64 array.

    Raises:
        ValueError: unknown ``method``, ``"umap"`` without umap-learn, features that are not a
            finite ``[n, F]`` with n >= 4.
    """
    if method not in EMBEDDINGS:
        raise ValueError(f"method must be one of {EMBEDDINGS}, got {method!r}")
    x = _as_matrix(features, normalize)
    if method == "umap" and not umap_available():
        raise ValueError("method='umap' needs the umap-learn package (pip install umap-learn)")
    if x.shape[1] > pca_dim and x.shape[0] > pca_dim:
        from sklearn.decomposition import PCA

        x = PCA(n_components=pca_dim, random_state=seed).fit_transform(x)
    if method == "umap":
        import umap

        reducer = umap.UMAP(
            n_components=2, n_neighbors=min(n_neighbors, x.shape[0] - 1), random_state=seed
        )
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, (x.shape[0] - 1) / 3)
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        learning_rate="auto",
        method="exact" if x.shape[0] <= 500 else "barnes_hut",
        max_iter=max_iter,
        random_state=seed,
    )
    if on_progress is None:
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)
    # scikit-learn reports t-SNE's progress only by printing it (verbose=2): read those lines
    tsne.set_params(verbose=2)
    with contextlib.redirect_stdout(_TsneLines(on_progress, max_iter)):
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)


class _TsneLines(io.TextIOBase):
    """A stdout that turns scikit-learn's ``[t-SNE] Iteration N: ...`` lines into
    ``on_progress(N, total)`` calls and drops everything else."""

    ITERATION = re.compile(r"\[t-SNE\] Iteration (\d+):")

    def __init__(self, on_progress: Callable[[int, int], None], total: int) -> None:
        self.on_progress, self.total = on_progress, total

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for match in self.ITERATION.finditer(text):
            self.on_progress(min(int(match.group(1)), self.total), self.total)
        return len(text)


def _as_matrix(features, normalize: bool) -> np.ndarray:
    x = (
        features.detach().cpu().double().numpy()
        if isinstance(features, Tensor)
        else np.asarray(features, dtype=np.float64)
    )
    if x.ndim != 2 or x.shape[0] < 4:
        raise ValueError(f"features must be [n, F] with n >= 4, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or inf")
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def plot_embedding(
    points: np.ndarray | Tensor,
    labels: Sequence[int] | np.ndarray | Tensor,
    class_names: Sequence[str] | None,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Scatter 2-D ``points [n, 2]`` coloured by ``labels [n]``; write a PNG and return its path.

    ``class_names[k]`` names class k in the legend (class ids are used when None); the legend
    is left out beyond 20 classes.

    Raises:
        ValueError: ``points`` not ``[n, 2]``, ``labels`` not ``[n]``, too few ``class_names``, or
            a path that does not end in ``.png``.
    """
    pts = points.detach().cpu().numpy() if isinstance(points, Tensor) else np.asarray(points)
    lab = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be [n, 2], got shape {pts.shape}")
    if lab.shape != (pts.shape[0],):
        raise ValueError(f"labels must be [{pts.shape[0]}] to match points, got {lab.shape}")
    classes = np.unique(lab)
    if class_names is not None and len(classes) and classes.max() >= len(class_names):
        raise ValueError(
            f"class_names has {len(class_names)} names but labels go up to {classes.max()}"
        )
    fig = new_figure(7.0, 6.0)
    ax = fig.subplots()
    cmap = _colormap(len(classes))
    diameter = _marker_diameter(len(pts))
    for i, k in enumerate(classes):
        sel = lab == k
        name = class_names[k] if class_names is not None else str(k)
        ax.scatter(
            pts[sel, 0], pts[sel, 1], s=diameter**2, alpha=0.7, color=cmap(i), label=name,
            linewidths=0,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "2-D embedding of test representations")
    if len(classes) <= 20:  # beyond that a legend hides the plot
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                  markerscale=LEGEND_MARKER / diameter)  # the same legend whatever the markers
    return save_png(fig, path)


LEGEND_MARKER = 7.5  # points: the legend's marker diameter


def _marker_diameter(n: int) -> float:
    """Marker diameter in points: ~2.5 pt at 2000 points (dense t-SNE clouds stay apart), growing
    as 1/sqrt(n) (the space per point) up to 8 pt, so a few dozen points are readable."""
    return float(np.clip(2.45 * np.sqrt(2000 / max(n, 1)), 2.45, 8.0))


def _colormap(n: int):
    """Qualitative colours for up to 20 classes, a resampled rainbow beyond."""
    from matplotlib import colormaps

    if n <= 10:
        return colormaps["tab10"]
    if n <= 20:
        return colormaps["tab20"]
    return colormaps["turbo"].resampled(n)
