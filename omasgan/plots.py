"""Figures people would rather look at than read: 2-D samples over J's score (for tables, in a PCA view),
and image sample grids.

A leaf module (matplotlib, numpy, torch only), so the pipeline and the evaluation can both use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = [
    "boundary_figure",
    "group_histograms",
    "model_samples",
    "sample_grid",
    "score_histograms",
    "table_boundary_figure",
]


def _shown(score: np.ndarray) -> np.ndarray:
    """J's logit as coloured: clipped at its median over the plot, so a distance-aware J, whose logit grows
    without bound far from the data, still shows its shape near the data."""
    return np.minimum(score, max(float(np.median(score)), float(score.min()) + 1e-6))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample_grid(rows: dict[str, np.ndarray], path: str | Path, n: int = 8) -> Path:
    """One row of n images per entry of ``rows`` ((m, c, h, w) arrays in [-1, 1]); writes a PNG."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), n, figsize=(n, len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n):
            axes[r, c].axis("off")
            if c >= len(images):
                continue
            image = np.clip((np.asarray(images[c]).transpose(1, 2, 0) + 1) / 2, 0, 1)
            axes[r, c].imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
        axes[r, 0].set_title(label, fontsize=8, loc="left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def score_histograms(
    scores: dict[str, np.ndarray], labels: np.ndarray, path: str | Path, bins: int = 50, clip: float = 0.0
) -> Path:
    """One panel per score: the densities of its values on normal (label 0) and anomalous (label 1)
    samples; ``clip`` > 0 drops that percentile at each end from the bin range. Writes a PNG."""
    panels = {name: {"normal": values[labels == 0], "anomaly": values[labels == 1]} for name, values in scores.items()}
    return group_histograms(panels, path, bins=bins, clip=clip)


def group_histograms(
    panels: dict[str, dict[str, np.ndarray]],
    path: str | Path,
    bins: int = 50,
    clip: float = 0.0,
    xlabel: str | None = None,
) -> Path:
    """One panel per entry of ``panels``, overlaying the density of each of its groups ({label: values});
    ``clip`` > 0 drops that percentile at each end of the panel's pooled values from the bin range. Writes a
    PNG."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), squeeze=False)
    for ax, (name, groups) in zip(axes[0], panels.items(), strict=True):
        pooled = np.concatenate(list(groups.values()))
        edges = np.linspace(*np.percentile(pooled, [clip, 100 - clip]), bins + 1)
        for label, values in groups.items():
            ax.hist(values, edges, alpha=0.5, density=True, label=label)
        ax.set_title(name, fontsize=9)
        if xlabel:
            ax.set_xlabel(xlabel, fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def model_samples(models, x: np.ndarray, path: str | Path) -> Path | None:
    """The figure a run directory gets: 2-D data -> boundary_figure; images -> rows x, G, B, G', the
    generator rows on the same latents z (column by column, B(z) is what Task 2 made of G(z))."""
    if x.ndim == 2 and x.shape[1] == 2:
        return boundary_figure(models, x, path, limits=float(np.abs(x).max() * 1.6))
    if x.ndim == 4:
        rows = {"x": x[:8]}
        for label, key in (("G", "generator"), ("B", "boundary"), ("G'", "retrained_generator")):
            rows[label] = models.sample(key, 8, torch.Generator().manual_seed(0)).cpu().numpy()
        return sample_grid(rows, path)
    return None


def boundary_figure(
    models, x: np.ndarray, path: str | Path, *, n: int = 1000, limits: float = 6.0, anomalies: np.ndarray | None = None
) -> Path:
    """2-D data: data, G, B and G' samples over J's score as a contour map. Writes a PNG, returns its path."""
    plt = _pyplot()
    grid = np.linspace(-limits, limits, 200, dtype=np.float32)
    xx, yy = np.meshgrid(grid, grid)
    points = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], axis=1))
    score = models.scores(points, which=("detector",))["detector"].numpy().reshape(xx.shape)
    gen = torch.Generator().manual_seed(0)
    samples = {
        name: models.sample(key, n, gen).cpu().numpy()
        for name, key in (("G", "generator"), ("B", "boundary"), ("G'", "retrained_generator"))
    }

    fig, ax = plt.subplots(figsize=(7, 6))
    contour = ax.contourf(xx, yy, _shown(score), levels=30, cmap="RdBu_r", alpha=0.55)
    ax.contour(xx, yy, score, levels=[0.0], colors="k", linewidths=1.2)
    fig.colorbar(contour, ax=ax, label="J logit, higher = more anomalous (colours stop at the median); J = 0: black")
    ax.scatter(*x[:n].T, s=3, c="tab:blue", label="data x")
    ax.scatter(*samples["G"].T, s=3, c="tab:orange", label="G (Task 1)")
    ax.scatter(*samples["B"].T, s=3, c="tab:green", label="B, boundary (Task 2)")
    ax.scatter(*samples["G'"].T, s=3, c="tab:purple", label="G' (Task 3)")
    if anomalies is not None:
        ax.scatter(*anomalies.T, s=6, marker="x", c="k", alpha=0.4, label="held-out anomalies")
    ax.set_xlim(-limits, limits)
    ax.set_ylim(-limits, limits)
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize=8, markerscale=3)
    ax.set_title("OMASGAN on 2-D data: samples and the detector J")
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table_boundary_figure(
    models,
    x: np.ndarray,
    path: str | Path,
    *,
    anomalies: np.ndarray | None = None,
    title: str = "OMASGAN on a table",
    n: int = 1500,
) -> Path:
    """A table in the plane of its two first principal components (of the rows as the networks see them,
    scaled where the model scales): the data, B's samples, optional anomalies, and J's logit on that plane
    through the data's mean (a slice of J, which lives in all d columns). Writes a PNG, returns its path."""
    plt = _pyplot()
    scaler = models.input_scaler

    def seen(rows: np.ndarray) -> torch.Tensor:  # rows as the networks see them
        t = torch.as_tensor(np.asarray(rows, dtype=np.float32))
        return t if scaler is None else scaler(t)

    data = seen(x).double()
    mean = data.mean(0)
    _, _, components = torch.linalg.svd(data - mean, full_matrices=False)
    basis = components[:2].T  # (d, 2)

    def project(rows: torch.Tensor) -> np.ndarray:
        return ((rows.double() - mean) @ basis).numpy()

    points = project(data)
    boundary = models.sample("boundary", n, torch.Generator().manual_seed(0))
    b = project(seen(boundary.cpu().numpy()))
    shown = [points, b] + ([project(seen(anomalies))] if anomalies is not None else [])
    low = np.min([np.quantile(p, 0.005, axis=0) for p in shown], axis=0)
    high = np.max([np.quantile(p, 0.995, axis=0) for p in shown], axis=0)
    pad = 0.1 * (high - low)
    g0 = np.linspace(low[0] - pad[0], high[0] + pad[0], 160)
    g1 = np.linspace(low[1] - pad[1], high[1] + pad[1], 160)
    xx, yy = np.meshgrid(g0, g1)
    plane = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1)) @ basis.T + mean
    raw = plane.float() if scaler is None else scaler.inverse(plane.float())
    score = models.scores(raw, which=("detector",))["detector"].numpy().reshape(xx.shape)

    fig, ax = plt.subplots(figsize=(7, 6))
    contour = ax.contourf(xx, yy, _shown(score), levels=30, cmap="RdBu_r", alpha=0.55)
    ax.contour(xx, yy, score, levels=[0.0], colors="k", linewidths=1.2)
    fig.colorbar(contour, ax=ax, label="J logit on the PC1-PC2 plane (colours stop at the plot's median); J = 0: black")
    order = np.random.default_rng(0).permutation(len(points))[:n]
    ax.scatter(*points[order].T, s=3, c="tab:blue", label="normal rows (training)")
    ax.scatter(*b.T, s=3, c="tab:green", label="B, boundary (Task 2)")
    if anomalies is not None:
        ax.scatter(*shown[2][:n].T, s=8, marker="x", c="k", alpha=0.5, label="anomalies (test)")
    ax.set_xlim(g0[0], g0[-1])
    ax.set_ylim(g1[0], g1[-1])
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.legend(loc="upper left", fontsize=8, markerscale=3)
    ax.set_title(title)
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
