"""Figures of the benchmark results for the docs, drawn from ``benchmarks/results/*.csv``.

Called by ``conf.py`` at build time, so the figures always show the committed result tables.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

#: CSV file -> (column naming the rows, score columns to draw, figure title).
FIGURES = {
    "snareseq_mosaic.csv": (
        "method",
        ["bio conservation", "batch correction", "total"],
        "SNARE-seq mosaic: scib-metrics scores (higher is better; settings in the table)",
    ),
    "snareseq_imputation.csv": (
        "method",
        ["ATAC AUROC", "RNA Pearson per cell", "RNA Pearson per gene", "ATAC Pearson per peak"],
        "SNARE-seq mosaic: imputing the hidden modality (higher is better)",
    ),
}


def grouped_bars(table: pd.DataFrame, label: str, scores: list[str], title: str) -> plt.Figure:
    """One group of bars per score, one bar per row of ``table``."""
    fig, ax = plt.subplots(figsize=(1.6 * len(scores) + 2.5, 3.2))
    rows = table[label].astype(str).tolist()
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        values = table.iloc[i][scores].astype(float).to_numpy()
        positions = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(scores))]
        bars = ax.bar(positions, values, width=width * 0.95, label=row)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(scores)), scores)
    ax.set_ylabel("score")
    ax.set_title(title, fontsize="medium")
    ax.legend(frameon=False, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def write_benchmark_figures(results: Path, out: Path) -> list[Path]:
    """Draw every figure of :data:`FIGURES` whose CSV exists; return the PNG paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (label, scores, title) in FIGURES.items():
        csv = results / name
        if not csv.exists():
            continue
        table = pd.read_csv(csv)
        if label not in table.columns:
            table = table.rename(columns={table.columns[0]: label})
        if any(s not in table.columns for s in scores):
            continue
        fig = grouped_bars(table, label, scores, title)
        target = out / f"benchmark_{csv.stem}.png"
        fig.savefig(target, dpi=100)
        plt.close(fig)
        written.append(target)
    return written
