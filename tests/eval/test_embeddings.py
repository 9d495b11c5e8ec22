"""2-D embeddings keep cluster structure; the plot is written; bad input is rejected."""

import numpy as np
import pytest
import torch

from supcon.eval.embeddings import embed_2d, plot_embedding, umap_available


def clusters(n_per=20, dim=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, dim, generator=g) * 5
    x = torch.cat([c + torch.randn(n_per, dim, generator=g) * 0.3 for c in centres])
    return x, torch.arange(3).repeat_interleave(n_per)


def one_nn_accuracy(points, labels):
    d = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


def test_tsne_keeps_clusters_and_is_seeded():
    x, y = clusters()
    a = embed_2d(x, "tsne", seed=0, max_iter=300)
    assert a.shape == (60, 2) and np.isfinite(a).all()
    assert one_nn_accuracy(a, y.numpy()) == 1.0
    np.testing.assert_allclose(embed_2d(x, "tsne", seed=0, max_iter=300), a)


def test_pca_path_and_numpy_input():
    x, y = clusters(n_per=30, dim=80)  # F > pca_dim and n > pca_dim: PCA first
    pts = embed_2d(x.numpy(), "tsne", seed=1, pca_dim=50, max_iter=300)
    assert pts.shape == (90, 2)
    assert one_nn_accuracy(pts, y.numpy()) == 1.0


def test_method_selection():
    x, _ = clusters(n_per=5)
    # small n: perplexity is lowered automatically
    assert embed_2d(x, max_iter=250).shape == (15, 2)
    if not umap_available():
        with pytest.raises(ValueError, match="umap-learn"):
            embed_2d(x, "umap")
    with pytest.raises(ValueError, match="method"):
        embed_2d(x, "pca")
    with pytest.raises(ValueError, match="n >= 4"):
        embed_2d(x[:3], "tsne")
    with pytest.raises(ValueError, match="NaN"):
        embed_2d(x * float("nan"), "tsne")


def test_plot_embedding_writes_png(tmp_path):
    x, y = clusters(n_per=5)
    pts = np.random.default_rng(0).normal(size=(15, 2))
    path = plot_embedding(pts, y, ["t-shirt", "trouser", "pullover"], tmp_path / "emb.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    # many classes, no names: still plots (no legend)
    labels = np.arange(30) % 25
    assert plot_embedding(np.zeros((30, 2)), labels, None, tmp_path / "many.png").exists()
    with pytest.raises(ValueError, match=r"points must be \[n, 2\]"):
        plot_embedding(np.zeros((15, 3)), y, None, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="labels must be"):
        plot_embedding(pts, y[:4], None, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="class_names"):
        plot_embedding(pts, y, ["only one"], tmp_path / "bad.png")


def test_the_default_embedding_is_t_sne_whatever_is_installed(monkeypatch):
    """The same command draws the same picture on every machine: UMAP only when asked for."""
    from supcon.cli import build_parser
    from supcon.eval import embeddings
    from supcon.workflows import EvalOptions

    monkeypatch.setattr(embeddings, "umap_available", lambda: True)  # as if umap-learn were there
    x, _ = clusters(n_per=5)
    want = embed_2d(x, "tsne", max_iter=250)
    np.testing.assert_array_equal(embed_2d(x, max_iter=250), want)
    assert EvalOptions().embedding == "tsne"
    for command in ("eval", "compare"):
        args = build_parser().parse_args([command, "--run" if command == "eval" else "--out", "x"])
        assert args.embedding == "tsne"
    with pytest.raises(ValueError, match="method"):
        embed_2d(x, "auto")
    with pytest.raises(ValueError, match="embedding must be one of tsne, umap, none"):
        EvalOptions(embedding="auto")


def test_markers_grow_when_there_are_few_points(tmp_path, monkeypatch):
    """40 points get markers of >= 5 pt across (readable); 2000 keep <= 3 pt (no blur of
    overlapping dots); the legend's markers are the same size in both."""
    from supcon.eval import embeddings

    figures = []
    real = embeddings.new_figure
    monkeypatch.setattr(embeddings, "new_figure", lambda *a, **k: figures.append(real(*a, **k)) or figures[-1])
    rng = np.random.default_rng(0)
    legend_sizes = []
    for n in (40, 2000):
        plot_embedding(rng.normal(size=(n, 2)), np.arange(n) % 4, None, tmp_path / f"{n}.png")
        ax = figures[-1].axes[0]
        diameters = {float(np.sqrt(c.get_sizes()[0])) for c in ax.collections}  # sizes are areas, pt^2
        assert len(diameters) == 1
        assert (diameters.pop() >= 5.0) if n == 40 else (diameters.pop() <= 3.0)
        legend = ax.get_legend()
        legend_sizes.append({round(float(np.sqrt(h.get_sizes()[0])), 3) for h in legend.legend_handles})
    assert legend_sizes[0] == legend_sizes[1] and len(legend_sizes[0]) == 1


def test_tsne_reports_its_iterations_and_gives_the_same_points():
    """on_progress sees the optimisation's iterations (every 50, rising, up to max_iter) and
    changes nothing: the points equal those of a run without it; nothing reaches stdout."""
    import contextlib
    import io

    x, _ = clusters(n_per=10)
    seen = []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        watched = embed_2d(x, "tsne", seed=0, max_iter=300, on_progress=lambda done, total: seen.append((done, total)))
    plain = embed_2d(x, "tsne", seed=0, max_iter=300)
    np.testing.assert_array_equal(watched, plain)
    assert seen and seen[0] == (50, 300) and all(t == 300 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] <= 300
    assert out.getvalue() == ""
