"""Reference mapping: query models, outputs on data lacking modalities, fully labelled training."""

from __future__ import annotations

import warnings

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from mosaicvi import MosaicVI
from mosaicvi.model._query import query_train_arguments

UNKNOWN = "unknown"
REFERENCE_BATCHES = ["b3", "b4"]  # b3 RNA+ATAC+ADT, b4 RNA+ATAC
QUERY_BATCHES = ["b1", "b2"]  # b1 RNA only, b2 ADT only
FIT = {"accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False}


def subset(mdata: mudata.MuData, batches: list[str]) -> mudata.MuData:
    """A MuData of the cells of ``batches`` (modalities with no such cell left out)."""
    mods = {}
    for name, adata in mdata.mod.items():
        keep = adata.obs["batch"].isin(batches).to_numpy()
        if keep.any():
            mods[name] = adata[keep].copy()
    out = mudata.MuData(mods)
    for key in ("batch", "cell_type"):
        column = pd.Series(index=out.obs_names, dtype=object)
        for adata in mods.values():
            column.loc[adata.obs_names] = adata.obs[key].astype(str).to_numpy()
        out.obs[key] = column.to_numpy()
    return out


def small(mdata, **kwargs) -> MosaicVI:
    return MosaicVI(mdata, n_hidden=32, n_hidden_decoder=32, n_latent=8, **kwargs)


@pytest.fixture(scope="module")
def reference(synthetic_mosaic_factory):
    """A fully labelled RNA+ATAC+ADT reference with batch-conditioned encoders (3 epochs)."""
    mdata = subset(synthetic_mosaic_factory(), REFERENCE_BATCHES)
    MosaicVI.setup_mudata(
        mdata, batch_key="batch", labels_key="cell_type", unlabeled_category=UNKNOWN
    )
    model = small(mdata, encode_batch=True)
    model.train(max_epochs=3, **FIT)
    return model, mdata, synthetic_mosaic_factory


def query_data(factory, known_batch: bool = False) -> mudata.MuData:
    """The unlabelled query: b1 (RNA only), b2 (ADT only) and, with ``known_batch``, new
    RNA-only cells of the reference batch b4."""
    query = subset(factory(), QUERY_BATCHES)
    mods = dict(query.mod)
    if known_batch:
        b4 = subset(factory(), ["b4"]).mod["rna"][:40].copy()
        b4.obs_names = [f"{name}_new" for name in b4.obs_names]
        mods["rna"] = ad.concat([mods["rna"], b4], merge="same")
    for adata in mods.values():
        del adata.obs["cell_type"]
    query = mudata.MuData(mods)
    query.obs["batch"] = pd.Series(query.obs_names.str.split("_").str[0], index=query.obs_names)
    return query


def test_fully_labelled_reference_trains_with_validation(reference):
    model, _, _ = reference
    # Every cell is labelled: the validation split is kept (it was emptied before: Lightning
    # failed with "An invalid dataloader was returned from val_dataloader(). Found None").
    assert len(model.history["elbo_validation"]) == 3
    assert model.predict().isin(["A", "B", "C"]).all()


def test_outputs_on_new_data_lacking_modalities(reference):
    model, mdata, _ = reference
    b4 = np.flatnonzero(mdata.obs["batch"].to_numpy() == "b4")
    rna_only = mudata.MuData({"rna": mdata.mod["rna"][mdata.obs_names[b4]].copy()})
    rna_only.obs["batch"] = "b4"
    z_new = model.get_latent_representation(rna_only)
    z_rna = model.get_latent_representation(mdata, indices=b4, modalities=["rna"])
    np.testing.assert_allclose(z_new, z_rna, atol=1e-5)
    presence = rna_only.obsm["_mosaicvi_presence"]
    assert presence["rna"].all() and not presence[["atac", "adt"]].to_numpy().any()
    assert len(model.predict(rna_only)) == len(b4)


@pytest.fixture(scope="module")
def fitted_query(reference):
    model, mdata, factory = reference
    z_reference = model.get_latent_representation()
    query = query_data(factory, known_batch=True)
    query_model = MosaicVI.load_query_data(query, model, accelerator="cpu")
    before = {k: v.clone() for k, v in query_model.module.state_dict().items()}
    z_query_before = query_model.get_latent_representation()
    query_model.train(max_epochs=4, **FIT)
    assert len(query_model.history["elbo_train"]) == 4
    return model, mdata, query, query_model, z_reference, before, z_query_before


def test_query_fit_keeps_the_reference_and_moves_the_query(fitted_query):
    model, mdata, query, query_model, z_reference, before, z_query_before = fitted_query
    assert query_model.summary_stats.n_batch == 4 and model.summary_stats.n_batch == 2
    # The reference cells' latent representation is unchanged by the query fit, although the
    # query held new cells of the reference batch b4 (whose rows the gradient hooks keep).
    z_after = query_model.get_latent_representation(mdata)
    np.testing.assert_allclose(z_after, z_reference, atol=1e-5)
    after = query_model.module.state_dict()
    for key in ("encoders.rna.batch_embedding.weight", "decoders.rna.batch_bias"):
        np.testing.assert_array_equal(after[key][:2].numpy(), before[key][:2].numpy())
        assert not torch.equal(after[key][2:], before[key][2:])  # the new rows were trained
    assert torch.equal(
        after["encoders.rna.input_layer.weight"], before["encoders.rna.input_layer.weight"]
    )
    # Query cells moved in the latent space (through their batch rows of the encoders).
    assert np.abs(query_model.get_latent_representation() - z_query_before).max() > 1e-3


def test_query_of_a_modality_subset_gets_labels(fitted_query):
    _, _, query, query_model, *_ = fitted_query
    assert set(query.mod) == {"rna", "adt"}  # RNA-only and ADT-only cells; no ATAC
    soft = query_model.predict(soft=True)
    assert soft.shape == (query.n_obs, 3)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    sets = query.obs["modality_set"].astype(str)
    assert set(sets) == {"rna", "adt"}


def test_query_model_save_load_round_trip(fitted_query, tmp_path):
    _, _, query, query_model, *_ = fitted_query
    query_model.save(tmp_path / "query")
    loaded = MosaicVI.load(tmp_path / "query", adata=query, accelerator="cpu")
    assert loaded.n_reference_batches_ == 2
    np.testing.assert_allclose(
        loaded.get_latent_representation(), query_model.get_latent_representation(), atol=1e-6
    )
    pd.testing.assert_series_equal(loaded.predict(), query_model.predict())


def test_query_from_a_saved_reference(reference, tmp_path):
    model, _, factory = reference
    model.save(tmp_path / "reference")
    query_model = MosaicVI.load_query_data(query_data(factory), tmp_path / "reference")
    query_model.to_device("cpu")
    assert query_model.reference_cell_visits_ == 3 * model.adata.n_obs
    reference_state = model.module.state_dict()
    rows = query_model.module.state_dict()["decoders.adt.batch_bias"]
    np.testing.assert_array_equal(rows[:2].numpy(), reference_state["decoders.adt.batch_bias"])
    # New rows start as an average reference batch.
    np.testing.assert_allclose(rows[2:].numpy(), rows[:2].mean(0).expand(2, -1).numpy())


def test_query_with_a_modality_unknown_to_the_reference(reference):
    model, _, factory = reference
    query = query_data(factory)
    extra = query.mod["rna"].copy()
    extra.var_names = [f"p{i}" for i in range(extra.n_vars)]
    query = mudata.MuData({**dict(query.mod), "hic": extra})
    query.obs["batch"] = query.obs_names.str.split("_").str[0]
    with pytest.raises(ValueError, match=r"modalities \['hic'\] that the reference"):
        MosaicVI.load_query_data(query, model, accelerator="cpu")
    with pytest.raises(ValueError, match=r"modalities \['hic'\] that the reference"):
        MosaicVI.prepare_query_mudata(query, model)


def test_prepare_query_reorders_and_reports_missing_features(reference):
    model, _, factory = reference
    query = query_data(factory)
    rna = query.mod["rna"]
    reordered = rna[:, rna.var_names[::-1]].copy()
    fewer = rna[:, rna.var_names[3:]].copy()
    # Reordered features are put in the reference's order.
    ordered = MosaicVI.prepare_query_mudata(
        mudata.MuData({"rna": reordered}), model, inplace=False
    )
    assert ordered.mod["rna"].var_names.equals(model.feature_names["rna"])
    np.testing.assert_array_equal(ordered.mod["rna"].X.toarray(), rna.X.toarray())
    # Missing features: an error by default, naming how many and which.
    lacking = mudata.MuData({"rna": fewer, "adt": query.mod["adt"].copy()})
    with pytest.raises(ValueError, match=r"lacks 3 of the reference's 60 features.*gene0"):
        MosaicVI.prepare_query_mudata(lacking, model)
    assert lacking.mod["rna"].n_vars == 57  # not modified
    with pytest.warns(UserWarning, match="the modality is removed"):
        MosaicVI.prepare_query_mudata(lacking, model, missing_features="unmeasured")
    assert set(lacking.mod) == {"adt"}
    padded = mudata.MuData({"rna": fewer})
    with pytest.warns(UserWarning, match="padded with zeros"):
        MosaicVI.prepare_query_mudata(padded, model, missing_features="zeros")
    assert padded.mod["rna"].var_names.equals(model.feature_names["rna"])
    assert padded.mod["rna"].var["mosaicvi_padded"].sum() == 3
    # Unprepared query features are refused by load_query_data with the way out.
    unordered = mudata.MuData({"rna": reordered})
    unordered.obs["batch"] = "b1"
    with pytest.raises(ValueError, match="prepare_query_mudata"):
        MosaicVI.load_query_data(unordered, model, accelerator="cpu")


def test_query_with_unknown_labels_is_refused(reference):
    model, _, factory = reference
    query = query_data(factory)
    query.obs["cell_type"] = "Z"
    with pytest.raises(ValueError, match=r"`labels_key='cell_type'`.*\['Z'\]"):
        MosaicVI.load_query_data(query, model, accelerator="cpu")


def test_query_training_defaults(fitted_query, reference):
    model, *_ = reference
    query_model = MosaicVI.load_query_data(query_data(reference[2]), model, accelerator="cpu")
    given = {"max_epochs": None, "n_epochs_kl_warmup": None, "n_epochs_adversarial_warmup": 3}
    arguments = query_train_arguments(query_model, dict(given, plan_kwargs=None))
    # A quarter of the reference's cell visits (3 epochs of 200 cells) over the query's cells.
    assert query_model.reference_cell_visits_ == 3 * 200
    assert arguments["max_epochs"] == max(5, round(600 / 4 / query_model.adata.n_obs))
    assert arguments["n_epochs_kl_warmup"] == 0 and arguments["n_epochs_adversarial_warmup"] == 3
    assert arguments["plan_kwargs"] == {"weight_decay": 0.0}
    assert query_train_arguments(model, given) == given  # a reference keeps its defaults


def test_query_batches_registered_without_reference_cells_are_fitted(synthetic_mosaic_factory):
    """A categorical batch column keeps unused categories: their rows are the query's to fit."""
    mdata = subset(synthetic_mosaic_factory(), REFERENCE_BATCHES)
    mdata.obs["batch"] = pd.Categorical(mdata.obs["batch"], categories=["b1", "b2", "b3", "b4"])
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = small(mdata, encode_batch=True)
    model.train(max_epochs=2, **FIT)
    query = query_data(synthetic_mosaic_factory)
    query_model = MosaicVI.load_query_data(query, model, accelerator="cpu")
    assert query_model.summary_stats.n_batch == 4  # no new category: b1, b2 were registered
    table = "encoders.rna.batch_embedding.weight"
    before = query_model.module.state_dict()[table].clone()
    # Unfitted rows start as an average reference batch (b3, b4 are codes 2, 3).
    np.testing.assert_allclose(before[0].numpy(), before[2:].mean(0).numpy(), atol=1e-6)
    query_model.train(max_epochs=2, **FIT)
    after = query_model.module.state_dict()[table]
    assert not torch.equal(after[0], before[0])  # b1 (RNA-only query cells) was fitted
    np.testing.assert_array_equal(after[2:].numpy(), before[2:].numpy())


class RecordModuleMode(Callback):
    """Record whether the module was in training mode at each training step."""

    def __init__(self):
        self.modes: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.modes.append(pl_module.module.training)


def test_query_fit_starts_in_training_mode_without_lightning_warning(reference):
    """``load_query_data`` leaves the module in eval mode; the fit switches it before Lightning
    checks (it warned "Found 88 module(s) in eval mode at the start of training")."""
    model, _, factory = reference
    query_model = MosaicVI.load_query_data(query_data(factory), model, accelerator="cpu")
    assert not query_model.module.training
    recorder = RecordModuleMode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        query_model.train(max_epochs=1, max_steps=2, callbacks=[recorder], **FIT)
    assert not [w for w in caught if "eval mode" in str(w.message)]
    assert recorder.modes == [True, True]
    assert not query_model.module.training  # evaluation mode again for the outputs
