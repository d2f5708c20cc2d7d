"""Semi-supervised labels: ``unlabeled_category``, labelled minibatches and ``predict()``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mosaicvi import MosaicVI
from mosaicvi.train._labelled_splitter import LabelledBatchSampler, labelled_mask

UNKNOWN = "unknown"


def hide_labels(mdata, fraction: float, seed: int = 0, key: str = "cell_type") -> np.ndarray:
    """Keep ``key`` for a random ``fraction`` of cells in ``obs["partial"]``; returns the mask."""
    rng = np.random.default_rng(seed)
    keep = rng.random(mdata.n_obs) < fraction
    truth = cell_labels(mdata, key)
    mdata.obs["partial"] = np.where(keep, truth, UNKNOWN)
    return keep


def cell_labels(mdata, key: str = "cell_type") -> np.ndarray:
    """``key`` of every cell, from ``mdata.obs`` or else from the modalities' ``obs``."""
    if key in mdata.obs:
        return mdata.obs[key].astype(str).to_numpy()
    labels = pd.Series(index=mdata.obs_names, dtype=object)
    for modality in mdata.mod.values():
        labels.loc[modality.obs_names] = modality.obs[key].astype(str).to_numpy()
    return labels.to_numpy()


def small_model(mdata, **kwargs) -> MosaicVI:
    return MosaicVI(mdata, n_hidden=32, n_hidden_decoder=32, n_latent=8, **kwargs)


def test_setup_with_unlabeled_category(synthetic_mosaic):
    keep = hide_labels(synthetic_mosaic, 0.2)
    MosaicVI.setup_mudata(
        synthetic_mosaic, batch_key="batch", labels_key="partial", unlabeled_category=UNKNOWN
    )
    model = MosaicVI(synthetic_mosaic, n_hidden=8, n_hidden_decoder=8, n_latent=4)
    assert sorted(model.label_classes) == ["A", "B", "C"]
    assert model.module.n_labels == 3
    np.testing.assert_array_equal(labelled_mask(model.adata_manager), keep)
    # Without unlabeled_category the labels are registered but not used for training.
    MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch", labels_key="cell_type")
    plain = MosaicVI(synthetic_mosaic, n_hidden=8, n_hidden_decoder=8, n_latent=4)
    assert plain.label_classes == []
    assert plain.module.n_labels == 0
    assert labelled_mask(plain.adata_manager) is None


def test_unlabeled_category_without_labels_key(synthetic_mosaic):
    before = set(synthetic_mosaic.obsm)
    with pytest.raises(ValueError, match="labels_key"):
        MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch", unlabeled_category=UNKNOWN)
    assert set(synthetic_mosaic.obsm) == before


def test_labelled_batch_sampler():
    labelled = np.zeros(100, dtype=bool)
    labelled[[3, 50, 97]] = True
    sampler = LabelledBatchSampler(labelled, batch_size=20, labelled_fraction=0.15)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 6  # 97 unlabelled cells, 17 per minibatch
    unlabelled_seen = []
    for batch in batches:
        assert sum(labelled[i] for i in batch) == 3
        unlabelled_seen += [i for i in batch if not labelled[i]]
    assert sorted(unlabelled_seen) == list(np.flatnonzero(~labelled))
    # Labelled cells are drawn in rounds: each appears equally often (18 draws, 3 cells).
    counts = pd.Series([i for b in batches for i in b if labelled[i]]).value_counts()
    assert (counts == 6).all()


def test_labelled_cells_stay_in_training(synthetic_mosaic, train_quick):
    keep = hide_labels(synthetic_mosaic, 0.1)
    MosaicVI.setup_mudata(
        synthetic_mosaic, batch_key="batch", labels_key="partial", unlabeled_category=UNKNOWN
    )
    model = MosaicVI(synthetic_mosaic, n_hidden=8, n_hidden_decoder=8, n_latent=4)
    train_quick(model, max_epochs=1, batch_size=64, early_stopping=True)
    labelled = set(np.flatnonzero(keep))
    assert labelled <= set(model.train_indices)
    assert not labelled & set(model.validation_indices)
    assert len(model.validation_indices) > 0
    assert np.isfinite(model.history["classification_loss_train"].to_numpy(dtype=float)).all()


@pytest.mark.parametrize("prior", ["normal", "mixture"])
def test_predict_beats_chance_on_real_data(prior, snareseq_small, train_quick):
    """10 % labels on the small SNARE-seq mosaic: the labelled cells are predicted far above
    chance (the frequency of the most common type), and every cell gets a label."""
    mdata = snareseq_small()
    keep = hide_labels(mdata, 0.1)
    MosaicVI.setup_mudata(
        mdata, batch_key="batch", labels_key="partial", unlabeled_category=UNKNOWN
    )
    model = small_model(mdata, prior=prior)
    if prior == "mixture":
        assert model.module.prior.n_clusters == len(model.label_classes)
    train_quick(model, max_epochs=10)
    predicted = model.predict()
    assert predicted.index.equals(mdata.obs_names)
    assert predicted.notna().all()
    truth = cell_labels(mdata)
    accuracy = np.mean(predicted.astype(str).to_numpy()[keep] == truth[keep])
    chance = pd.Series(truth).value_counts(normalize=True).iloc[0]
    assert accuracy > max(2 * chance, 0.5), (accuracy, chance)
    soft = model.predict(soft=True)
    assert list(soft.columns) == model.label_classes
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(soft.idxmax(axis=1).to_numpy(), predicted.astype(str))
    subset = model.predict(indices=[0, 5])
    assert list(subset.index) == list(mdata.obs_names[[0, 5]])


def test_predict_needs_labels(synthetic_mosaic, train_quick):
    MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch", labels_key="cell_type")
    model = MosaicVI(synthetic_mosaic, n_hidden=8, n_hidden_decoder=8, n_latent=4)
    train_quick(model, max_epochs=1)
    with pytest.raises(ValueError, match="unlabeled_category"):
        model.predict()


def test_too_few_clusters_for_the_labels(synthetic_mosaic):
    hide_labels(synthetic_mosaic, 0.2)
    MosaicVI.setup_mudata(
        synthetic_mosaic, batch_key="batch", labels_key="partial", unlabeled_category=UNKNOWN
    )
    with pytest.raises(ValueError, match="n_clusters"):
        MosaicVI(synthetic_mosaic, prior="mixture", n_clusters=2)


def test_predict_after_save_and_load(synthetic_mosaic, train_quick, tmp_path):
    hide_labels(synthetic_mosaic, 0.3)
    MosaicVI.setup_mudata(
        synthetic_mosaic, batch_key="batch", labels_key="partial", unlabeled_category=UNKNOWN
    )
    model = MosaicVI(synthetic_mosaic, n_hidden=8, n_hidden_decoder=8, n_latent=4, prior="mixture")
    train_quick(model, max_epochs=1)
    expected = model.predict(soft=True)
    model.save(tmp_path / "model", overwrite=True)
    loaded = MosaicVI.load(tmp_path / "model", adata=synthetic_mosaic)
    assert loaded.module.prior_name == "mixture"
    pd.testing.assert_frame_equal(loaded.predict(soft=True), expected, rtol=1e-5, atol=1e-6)
