"""Alignment without known pairs: how well the latent codes of different modality sets mix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mosaicvi.metrics._alignment import _labels, _matrix
from mosaicvi.metrics._views import presence

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData
    from mudata import MuData
    from numpy.typing import ArrayLike

    from mosaicvi.model import MosaicVI


def modality_sets(measured: pd.DataFrame) -> np.ndarray:
    """Each cell's modality set, its measured modalities joined by ``+`` (``"rna+atac"``)."""
    names = np.asarray(measured.columns, dtype=object)
    return np.array(["+".join(names[row]) or "none" for row in measured.to_numpy(dtype=bool)])


def _check_groups(groups: np.ndarray, test_fraction: float, n_neighbors: int) -> None:
    sizes = pd.Series(groups).value_counts()
    if len(sizes) < 2:
        raise ValueError(
            f"All {len(groups)} cells measured the same modalities ({sizes.index[0]!r}): "
            "modality mixing compares the codes of cells that measured different modality sets "
            "(e.g. RNA-only next to ATAC-only cells), so it needs at least two of them."
        )
    if sizes.min() < 2:
        raise ValueError(
            f"Every modality set needs at least two cells for a stratified split; cells per set: "
            f"{sizes.to_dict()}. Leave out the cells of the rare sets (`indices`)."
        )
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"`test_fraction` must lie strictly between 0 and 1, not {test_fraction}."
        )
    if round(test_fraction * len(groups)) < len(sizes):
        raise ValueError(
            f"`test_fraction={test_fraction}` holds out fewer cells than there are modality sets "
            f"({len(sizes)}); raise it or pass more cells."
        )
    if not 1 <= n_neighbors < len(groups):
        raise ValueError(
            f"`n_neighbors` must be between 1 and the number of cells minus one "
            f"({len(groups) - 1}), got {n_neighbors}."
        )


def _probe(
    z: np.ndarray,
    groups: np.ndarray,
    test_fraction: float,
    hidden_layer_sizes: tuple[int, ...],
    seed: int,
) -> dict[str, float]:
    """Held-out accuracy of an MLP that predicts the modality set from ``z``."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z_train, z_test, g_train, g_test = train_test_split(
        z, groups, test_size=test_fraction, stratify=groups, random_state=seed
    )
    classifier = make_pipeline(
        StandardScaler(),
        MLPClassifier(
            hidden_layer_sizes=hidden_layer_sizes,
            max_iter=200,
            early_stopping=True,
            random_state=seed,
        ),
    ).fit(z_train, g_train)
    predicted = classifier.predict(z_test)
    accuracy = float(np.mean(predicted == g_test))
    majority = float(pd.Series(g_test).value_counts(normalize=True).iloc[0])
    return {
        "probe_accuracy": accuracy,
        "probe_majority_rate": majority,
        "probe_chance_adjusted": (accuracy - majority) / (1.0 - majority),
        "probe_balanced_accuracy": float(balanced_accuracy_score(g_test, predicted)),
    }


def _knn_mixing(z: np.ndarray, groups: np.ndarray, n_neighbors: int) -> dict[str, float]:
    """Fraction of each cell's neighbours from other modality sets, against perfect mixing."""
    from sklearn.neighbors import NearestNeighbors

    codes = pd.factorize(groups)[0]
    sizes = np.bincount(codes)
    neighbours = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(z)
    index = neighbours.kneighbors(z, return_distance=False)
    # Drop each cell itself (the first neighbour, unless duplicates came first).
    others = np.array([row[row != i][:n_neighbors] for i, row in enumerate(index)])
    observed = (codes[others] != codes[:, None]).mean(1)
    expected = (len(codes) - sizes[codes]) / (len(codes) - 1)
    return {
        "knn_other_fraction": float(observed.mean()),
        "knn_expected_fraction": float(expected.mean()),
        "knn_mixing_ratio": float(observed.mean() / expected.mean()),
    }


def modality_mixing_scores(
    z: ArrayLike,
    groups: ArrayLike,
    *,
    n_neighbors: int = 15,
    test_fraction: float = 0.2,
    hidden_layer_sizes: tuple[int, ...] = (128, 128),
    seed: int = 0,
) -> pd.Series:
    """:func:`modality_mixing` on arrays, for embeddings from any method.

    Parameters
    ----------
    z
        Embeddings, cells x dimensions.
    groups
        Each cell's modality set (or any grouping whose mixing is to be checked).
    n_neighbors, test_fraction, hidden_layer_sizes, seed
        As in :func:`modality_mixing`.

    Returns
    -------
    The Series of :func:`modality_mixing`.

    Raises
    ------
    ValueError
        As :func:`modality_mixing`, and if ``z`` is not a finite 2-D array or ``groups`` does
        not hold one entry per cell.

    Examples
    --------
    >>> import numpy as np
    >>> import mosaicvi
    >>> z = np.random.default_rng(0).normal(size=(200, 5))
    >>> groups = np.repeat(["rna", "atac"], 100)
    >>> scores = mosaicvi.metrics.modality_mixing_scores(z, groups)
    >>> bool(abs(scores["knn_mixing_ratio"] - 1) < 0.1)
    True
    """
    z = _matrix(z, "z")
    groups = _labels(groups, z.shape[0], "groups").astype(str)
    _check_groups(groups, test_fraction, n_neighbors)
    scores = {
        **_probe(z, groups, test_fraction, tuple(hidden_layer_sizes), seed),
        **_knn_mixing(z, groups, n_neighbors),
        "n_cells": float(len(groups)),
        "n_modality_sets": float(len(np.unique(groups))),
    }
    return pd.Series(scores, name="modality_mixing")


def modality_mixing(
    model: MosaicVI,
    adata: MuData | AnnData | None = None,
    *,
    indices: Sequence[int] | None = None,
    n_neighbors: int = 15,
    test_fraction: float = 0.2,
    hidden_layer_sizes: tuple[int, ...] = (128, 128),
    max_cells: int | None = 20_000,
    seed: int = 0,
) -> pd.Series:
    """How well cells that measured different modalities mix in the latent space.

    An alignment check for data without known pairs (for paired data, see :func:`foscttm` and
    :func:`knn_label_transfer`; for embeddings of other methods, :func:`modality_mixing_scores`).
    Each cell's *modality set* is the modalities it measured, from the model's presence mask
    (``"rna"``, ``"atac"``, ``"rna+atac"``). On the latent codes (posterior means from every
    modality a cell has) two scores are computed:

    - **probe**: an MLP classifier (standardised codes, hidden layers ``hidden_layer_sizes``)
      trained on a stratified ``1 - test_fraction`` of the cells predicts the modality set of the
      other cells. Well-aligned codes leave it near the majority-class rate; codes that keep
      the modalities apart let it reach 1. Reported raw, as balanced accuracy, and chance
      adjusted: ``(accuracy - majority rate) / (1 - majority rate)`` (0 at chance, 1 perfect).
    - **kNN mixing**: the fraction of each cell's ``n_neighbors`` nearest neighbours (euclidean)
      from another modality set, averaged over cells, divided by that fraction under perfect
      mixing, ``(n - n_s) / (n - 1)`` for a cell of a set of ``n_s`` cells (1: mixed as if the
      sets were shuffled, 0: no cell has a neighbour from another set).

    Modality sets that differ in cell-type composition cannot mix perfectly even when every type
    is aligned, so read both scores against a reference (e.g. the same data without
    integration), not against their ideal values alone.

    Parameters
    ----------
    model
        A trained :class:`~mosaicvi.MosaicVI`.
    adata
        Data registered like the training data (default: the training data).
    indices
        Cells to use (default: all).
    n_neighbors
        Neighbours per cell of the kNN mixing.
    test_fraction
        Fraction of the cells on which the probe is scored.
    hidden_layer_sizes
        Hidden layers of the probe's :class:`sklearn.neural_network.MLPClassifier`.
    max_cells
        At most this many cells (a random subset, seeded), which bounds the probe's training time;
        ``None`` for all.
    seed
        Seed of the subset, the split and the probe.

    Returns
    -------
    Series with ``probe_accuracy``, ``probe_majority_rate``, ``probe_chance_adjusted``,
    ``probe_balanced_accuracy``, ``knn_other_fraction``, ``knn_expected_fraction``,
    ``knn_mixing_ratio``, ``n_cells`` and ``n_modality_sets``.

    Raises
    ------
    ValueError
        If all cells measured the same modalities, a modality set has fewer than two cells,
        or ``n_neighbors`` or ``test_fraction`` are out of range.

    Examples
    --------
    >>> import mosaicvi
    >>> scores = mosaicvi.metrics.modality_mixing(model)  # doctest: +SKIP
    >>> scores[["probe_accuracy", "probe_chance_adjusted", "knn_mixing_ratio"]]  # doctest: +SKIP
    probe_accuracy           0.71
    probe_chance_adjusted    0.40
    knn_mixing_ratio         0.62
    Name: modality_mixing, dtype: float64
    """
    data = model._validate_anndata(adata)
    cells = np.arange(data.n_obs) if indices is None else np.asarray(indices, dtype=int)
    if max_cells is not None and len(cells) > max_cells:
        rng = np.random.default_rng(seed)
        cells = np.sort(rng.choice(cells, size=max_cells, replace=False))
    groups = modality_sets(presence(model, data).iloc[cells])
    _check_groups(groups, test_fraction, n_neighbors)
    z = model.get_latent_representation(data, indices=cells)
    return modality_mixing_scores(
        z,
        groups,
        n_neighbors=n_neighbors,
        test_fraction=test_fraction,
        hidden_layer_sizes=hidden_layer_sizes,
        seed=seed,
    )
