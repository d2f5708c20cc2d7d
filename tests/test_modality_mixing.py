"""mosaicvi.metrics.modality_mixing: probe and kNN mixing on known mixed and separated codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mosaicvi
from mosaicvi.metrics import modality_mixing_scores
from mosaicvi.metrics._mixing import modality_sets

N_CELLS = 400


def _groups() -> np.ndarray:
    return np.repeat(["rna", "atac", "rna+atac"], [200, 120, 80])


def test_random_codes_mix_like_a_shuffle():
    z = np.random.default_rng(0).normal(size=(N_CELLS, 5))
    scores = modality_mixing_scores(z, _groups(), seed=0)
    assert scores["probe_accuracy"] < scores["probe_majority_rate"] + 0.1
    assert abs(scores["probe_chance_adjusted"]) < 0.25
    assert scores["probe_balanced_accuracy"] < 0.5
    assert scores["knn_mixing_ratio"] == pytest.approx(1.0, abs=0.1)
    assert scores["n_cells"] == N_CELLS and scores["n_modality_sets"] == 3


def test_separated_codes_are_told_apart_and_do_not_mix():
    groups = _groups()
    offsets = {"rna": 0.0, "atac": 20.0, "rna+atac": 40.0}
    z = np.random.default_rng(0).normal(size=(N_CELLS, 5))
    z[:, 0] += [offsets[g] for g in groups]
    scores = modality_mixing_scores(z, groups, seed=0)
    assert scores["probe_accuracy"] > 0.95
    assert scores["probe_chance_adjusted"] > 0.9
    assert scores["knn_mixing_ratio"] < 0.05
    # Under perfect mixing, a cell of a set of n_s cells has (n - n_s) / (n - 1) others.
    sizes = pd.Series(groups).value_counts()
    expected = np.mean([(N_CELLS - sizes[g]) / (N_CELLS - 1) for g in groups])
    assert scores["knn_expected_fraction"] == pytest.approx(expected)


def test_seed_makes_it_reproducible():
    z = np.random.default_rng(1).normal(size=(N_CELLS, 3))
    first = modality_mixing_scores(z, _groups(), seed=3)
    pd.testing.assert_series_equal(first, modality_mixing_scores(z, _groups(), seed=3))


@pytest.mark.parametrize(
    ("groups", "kwargs", "match"),
    [
        (np.repeat("rna", N_CELLS), {}, "at least two"),
        (np.r_[np.repeat("rna", N_CELLS - 1), ["atac"]], {}, "at least two cells"),
        (_groups(), {"n_neighbors": 0}, "n_neighbors"),
        (_groups(), {"test_fraction": 1.0}, "test_fraction"),
    ],
)
def test_bad_input_is_explained(groups, kwargs, match):
    z = np.random.default_rng(0).normal(size=(N_CELLS, 2))
    with pytest.raises(ValueError, match=match):
        modality_mixing_scores(z, groups, **kwargs)


def test_modality_sets_from_presence():
    measured = pd.DataFrame(
        {"rna": [True, False, True], "atac": [False, True, True]}, index=["a", "b", "c"]
    )
    assert list(modality_sets(measured)) == ["rna", "atac", "rna+atac"]


def test_on_a_trained_model(synthetic_mosaic, train_quick):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = train_quick(mosaicvi.MosaicVI(synthetic_mosaic, n_latent=4, n_hidden=32))
    scores = mosaicvi.metrics.modality_mixing(model, n_neighbors=10)
    # b1 rna, b2 adt, b3 rna+atac+adt, b4 rna+atac: four modality sets of 100 cells.
    assert scores["n_modality_sets"] == 4 and scores["n_cells"] == 400
    assert scores["probe_majority_rate"] == pytest.approx(0.25)
    assert 0.0 <= scores["probe_accuracy"] <= 1.0
    assert 0.0 <= scores["knn_mixing_ratio"] <= 4.0 / 3.0
    rna_only = np.flatnonzero(model.adata.obs["batch"].astype(str).to_numpy() == "b1")
    with pytest.raises(ValueError, match="measured the same modalities"):
        mosaicvi.metrics.modality_mixing(model, indices=rna_only)
    assert mosaicvi.metrics.modality_mixing(model, max_cells=200)["n_cells"] == 200
