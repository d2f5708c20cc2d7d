"""mosaicvi.metrics: latent accuracy per modality view and cross-modal coherence."""

from __future__ import annotations

import numpy as np
import pytest
import scvi

import mosaicvi
from mosaicvi.metrics._coherence import profile_features


@pytest.fixture(scope="module")
def trained(synthetic_mosaic_factory):
    """A model trained on the synthetic mosaic (b1 RNA, b2 ADT, b3 all three, b4 RNA+ATAC)."""
    scvi.settings.seed = 0  # module scope: built before the per-test seeding
    mdata = synthetic_mosaic_factory()
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch", labels_key="cell_type")
    model = mosaicvi.MosaicVI(mdata, n_latent=8)
    model.train(
        max_epochs=15,
        batch_size=128,
        early_stopping=False,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return model


def _shuffled(model, seed: int = 1) -> np.ndarray:
    labels = model.adata.obs["cell_type"].astype(str).to_numpy()
    return np.random.default_rng(seed).permutation(labels)


def test_latent_accuracy_views(trained):
    table = mosaicvi.metrics.latent_accuracy(trained, "cell_type")
    assert list(table.index) == ["rna", "atac", "adt", "joint"]
    assert list(table.columns) == ["rna", "atac", "adt", "joint"]
    assert table.index.name == "trained on" and table.columns.name == "tested on"
    # Three balanced types: chance is about 1/3. Each view separates them; crossing from one
    # modality's codes to another's mostly works too (a short training: not every pair).
    values = table.to_numpy()
    assert (np.diag(values) > 0.8).all()
    assert values[~np.eye(len(values), dtype=bool)].mean() > 0.6
    # The same classifier on shuffled labels is near chance: the scores come from the labels.
    shuffled = mosaicvi.metrics.latent_accuracy(trained, _shuffled(trained))
    assert np.diag(shuffled.to_numpy()).max() < 0.6


def test_latent_accuracy_uses_single_modality_codes(trained, monkeypatch):
    calls = []
    original = type(trained).get_latent_representation

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("modalities"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(trained), "get_latent_representation", spy)
    table = mosaicvi.metrics.latent_accuracy(
        trained, "cell_type", ["adt", "atac"], metric="balanced_accuracy"
    )
    assert calls == [["adt"], ["atac"]]
    assert table.shape == (2, 2)


def test_latent_accuracy_leaves_out_unlabelled_cells(trained):
    labels = trained.adata.obs["cell_type"].astype(object).to_numpy().copy()
    labels[: len(labels) // 2] = None
    table = mosaicvi.metrics.latent_accuracy(trained, labels, ["rna"])
    assert table.loc["rna", "rna"] > 0.8


def test_cross_modal_coherence(trained):
    table = mosaicvi.metrics.cross_modal_coherence(trained, "cell_type", n_components=10)
    assert list(table.index) == ["rna", "atac", "adt", "all measured", "real profiles"]
    assert list(table.columns) == ["rna", "atac", "adt"]
    assert table.notna().all().all()
    assert (table.loc["real profiles"] > 0.7).all()
    # Counts drawn from profiles imputed from another modality alone (with the likelihood's
    # dispersion) are recognised by real-profile classifiers far above chance (3 types: 1/3).
    assert table.loc["rna", "adt"] > 0.6 and table.loc["adt", "rna"] > 0.6
    shuffled = mosaicvi.metrics.cross_modal_coherence(
        trained, _shuffled(trained), ["rna", "adt"], n_components=10
    )
    assert shuffled.loc["real profiles"].max() < 0.6


def test_profile_features_binarise_and_scale():
    counts = np.array([[0.0, 2.0, 2.0], [1.0, 0.0, 3.0]])
    binary = profile_features(counts, binary=True).toarray()
    np.testing.assert_allclose(binary[0], [0.0, np.log1p(5e3), np.log1p(5e3)])
    plain = profile_features(counts, binary=False).toarray()
    np.testing.assert_allclose(plain[1], np.log1p([2.5e3, 0.0, 7.5e3]))


def test_imputation_from_chosen_modalities(trained):
    obs = trained.adata.obs
    rna_only = np.flatnonzero((obs["batch"] == "b1").to_numpy())
    trimodal = np.flatnonzero((obs["batch"] == "b3").to_numpy())
    kwargs = {"modality": "adt", "use_z_mean": True, "return_numpy": True}
    # A cell that measured only RNA is encoded the same with or without the restriction.
    np.testing.assert_allclose(
        trained.get_normalized_expression(indices=rna_only, modalities=["rna"], **kwargs),
        trained.get_normalized_expression(indices=rna_only, **kwargs),
        rtol=1e-5,
    )
    from_atac = trained.get_normalized_expression(indices=trimodal, modalities=["atac"], **kwargs)
    from_all = trained.get_normalized_expression(indices=trimodal, **kwargs)
    assert not np.allclose(from_atac, from_all)
    # The code from ATAC alone differs from the joint one, so does what it decodes to.
    z_atac = trained.get_latent_representation(indices=trimodal, modalities=["atac"])
    z_all = trained.get_latent_representation(indices=trimodal)
    assert not np.allclose(z_atac, z_all)
    with pytest.raises(ValueError, match="measured none of"):
        trained.get_normalized_expression(indices=rna_only, modalities=["atac"], **kwargs)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: mosaicvi.metrics.latent_accuracy(m, "cell_type", metric="f1"), "`metric`"),
        (lambda m: mosaicvi.metrics.latent_accuracy(m, "no_such_column"), "not a column"),
        (lambda m: mosaicvi.metrics.latent_accuracy(m, ["A", "B"]), "has 2 entries"),
        (lambda m: mosaicvi.metrics.latent_accuracy(m, "cell_type", ["protein"]), "Views"),
        (
            lambda m: mosaicvi.metrics.cross_modal_coherence(m, "cell_type", test_fraction=1.0),
            "test_fraction",
        ),
    ],
)
def test_metrics_bad_input(trained, call, message):
    with pytest.raises(ValueError, match=message):
        call(trained)
