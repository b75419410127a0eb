"""The evaluation plots every modality draws the same way: the ROC curve and the score histogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines import metrics


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: steps and tests run without a display
    import matplotlib.pyplot as plt

    return plt


def roc_plot(labels: np.ndarray, scores: np.ndarray, auroc: float | None, title: str, path: Path) -> None:
    """ROC curve of raw scores; nothing when only one label is present (the curve is undefined)."""
    if not len(labels) or labels.min() == labels.max():
        return
    plt = pyplot()
    fpr, tpr = metrics.roc_points(labels, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"AUROC {auroc:.3f}" if auroc is not None else "ROC")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def histogram_plot(labels: np.ndarray, scores: np.ndarray, threshold: float, unit: str, title: str, path: Path) -> None:
    """Raw scores of normal and anomalous samples with the decision threshold."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if len(scores):
        bins = np.linspace(min(scores.min(), threshold), max(scores.max(), threshold), 41)
        ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal")
        ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="anomalous")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set(xlabel="raw anomaly score", ylabel=unit, title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
