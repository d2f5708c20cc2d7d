"""MosaicVI with a guidance graph: alignment of the graph to the model, training, outputs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import mosaicvi
from mosaicvi.model._guidance import (
    bridged_modality_groups,
    default_graph_loss_weight,
    default_graph_weight,
    default_prior,
    resolve_guidance_graph,
)
from mosaicvi.model._options import IgnoredOptionWarning
from mosaicvi.nn import MixturePrior


def synthetic_links() -> pd.DataFrame:
    """gene j - peak j..j+2 for the first 60 peaks, gene j - prot j for the 15 proteins."""
    edges = [(f"gene{j}", f"peak{3 * j + k}") for j in range(20) for k in range(3)]
    edges += [(f"gene{j}", f"prot{j}") for j in range(15)]
    return pd.DataFrame(edges, columns=["source", "target"])


def build_graph(mdata, modalities=None, key="guidance"):
    links = synthetic_links()
    if modalities is not None:
        features = np.concatenate([mdata[m].var_names for m in modalities])
        links = links[links["source"].isin(features) & links["target"].isin(features)]
    return mosaicvi.data.guidance_graph(
        mdata,
        modalities,
        gene_coordinates=None,
        protein_to_gene=None,
        links=links,
        key=key,
    )


@pytest.fixture
def graph_model(synthetic_mosaic, train_quick):
    graph = build_graph(synthetic_mosaic)
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = mosaicvi.MosaicVI(synthetic_mosaic, guidance_graph=graph, n_latent=6)
    return train_quick(model, max_epochs=3)


def test_graph_losses_are_logged_and_finite(graph_model):
    history = graph_model.history
    for key in ("graph_nll_train", "graph_kl_train"):
        values = history[key].to_numpy(dtype=float).ravel()
        assert len(values) == 3
        assert np.all(np.isfinite(values))
    assert "guidance graph with 150 links" in graph_model._model_summary_string


def test_feature_embeddings_are_named_and_written_to_varm(graph_model, synthetic_mosaic):
    embeddings = graph_model.get_feature_embeddings(key_added="X_test")
    assert list(embeddings) == ["rna", "atac", "adt"]
    for m, frame in embeddings.items():
        assert frame.index.equals(synthetic_mosaic[m].var_names)
        assert frame.shape[1] == 6
        np.testing.assert_allclose(synthetic_mosaic[m].varm["X_test"], frame.to_numpy())
        assert "X_test_std" not in synthetic_mosaic[m].varm
    stds = graph_model.get_feature_embeddings(return_std=True)
    assert all((frame.to_numpy() > 0).all() for frame in stds.values())


def test_feature_embeddings_need_a_graph(synthetic_mosaic, train_quick):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = train_quick(mosaicvi.MosaicVI(synthetic_mosaic), max_epochs=1)
    assert model.module.graph_encoder is None
    assert all(d.graph_weight == 0.0 for d in model.module.decoders.values())
    with pytest.raises(ValueError, match="no guidance graph"):
        model.get_feature_embeddings()


def test_graph_options_without_a_graph_warn_once_at_creation(synthetic_mosaic, tmp_path):
    """Options that cannot act are named, not silently dropped; a reload does not repeat it."""
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    with pytest.warns(IgnoredOptionWarning, match=r"\{'weight': 0.5\} have no effect"):
        model = mosaicvi.MosaicVI(synthetic_mosaic, n_latent=4, graph_kwargs={"weight": 0.5})
    assert all(d.graph_weight == 0.0 for d in model.module.decoders.values())
    model.save(tmp_path / "model", save_anndata=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IgnoredOptionWarning)
        mosaicvi.MosaicVI(synthetic_mosaic, n_latent=4, graph_kwargs={"weight": "auto"})
        mosaicvi.MosaicVI.load(tmp_path / "model", adata=synthetic_mosaic)


def test_graph_by_key_and_save_load(synthetic_mosaic, train_quick, tmp_path):
    build_graph(synthetic_mosaic, key="my_graph")
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = mosaicvi.MosaicVI(synthetic_mosaic, guidance_graph="my_graph", n_latent=4)
    train_quick(model, max_epochs=1)
    before = model.get_feature_embeddings()["atac"]
    model.save(tmp_path / "model", save_anndata=False)
    loaded = mosaicvi.MosaicVI.load(tmp_path / "model", adata=synthetic_mosaic)
    pd.testing.assert_frame_equal(loaded.get_feature_embeddings()["atac"], before)
    np.testing.assert_allclose(
        loaded.get_latent_representation(), model.get_latent_representation(), rtol=1e-5
    )


def test_graph_in_other_modality_order_is_realigned(synthetic_mosaic):
    graph = build_graph(synthetic_mosaic, ["adt", "atac", "rna"], key=None)
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = mosaicvi.MosaicVI(synthetic_mosaic, guidance_graph=graph)
    resolved = resolve_guidance_graph(graph, synthetic_mosaic, model.feature_names)
    names = np.concatenate([model.feature_names[m] for m in model.modalities])
    position = {name: i for i, name in enumerate(names)}
    assert resolved.shape == (275, 275)
    assert resolved[position["gene0"], position["peak2"]] == 1.0
    assert resolved[position["peak2"], position["gene0"]] == 1.0
    assert resolved[position["gene3"], position["prot3"]] == 1.0
    assert resolved[position["gene3"], position["prot4"]] == 0.0
    assert np.all(resolved.diagonal() == 1.0)
    assert (resolved != resolved.T).nnz == 0


def test_modality_missing_from_graph_gets_self_loops(synthetic_mosaic):
    graph = build_graph(synthetic_mosaic, ["rna", "atac"], key=None)
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = mosaicvi.MosaicVI(synthetic_mosaic, guidance_graph=graph)
    resolved = resolve_guidance_graph(graph, synthetic_mosaic, model.feature_names)
    adt = slice(*model.module.feature_slices["adt"])
    block = resolved[adt][:, :]
    assert block.nnz == 15
    assert np.all(block[:, adt].diagonal() == 1.0)


def test_graph_on_other_features_is_refused(synthetic_mosaic):
    graph = build_graph(synthetic_mosaic, key=None)
    subset = synthetic_mosaic.copy()
    subset.mod["atac"] = subset["atac"][:, :150].copy()
    subset.update()
    mosaicvi.MosaicVI.setup_mudata(subset, batch_key="batch")
    with pytest.raises(ValueError, match="other 'atac' features"):
        mosaicvi.MosaicVI(subset, guidance_graph=graph)


def test_bad_guidance_graph_arguments(synthetic_mosaic):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    with pytest.raises(ValueError, match="no guidance graph under 'missing'"):
        mosaicvi.MosaicVI(synthetic_mosaic, guidance_graph="missing")
    with pytest.raises(TypeError, match="GuidanceGraph"):
        mosaicvi.MosaicVI(synthetic_mosaic, guidance_graph=sp.eye(275))


def test_default_graph_weight_follows_pairing():
    paired = np.array([[1, 1]] * 11 + [[1, 0]] * 5, dtype=bool)
    diagonal = np.array([[1, 0]] * 20 + [[0, 1]] * 20 + [[1, 1]] * 3, dtype=bool)
    rich, small = [1677, 25734], [14, 29]
    assert default_graph_weight(paired, rich) == 0.9
    assert default_graph_weight(diagonal, rich) == 1.0
    assert default_graph_weight(diagonal, small) == 0.99
    assert default_graph_weight(np.ones((30, 1), dtype=bool), [2000]) == 0.99
    assert default_graph_loss_weight(paired, rich) == 0.02
    assert default_graph_loss_weight(diagonal, rich) == 0.005
    assert default_graph_loss_weight(diagonal, small) == 0.02


def test_diagonal_defaults_follow_pairing_and_size():
    paired = np.array([[1, 1]] * 11 + [[1, 0]] * 5, dtype=bool)
    diagonal = np.array([[1, 0]] * 20 + [[0, 1]] * 20 + [[1, 1]] * 3, dtype=bool)
    # rna-atac and atac-adt paired, rna-adt never: one group through atac
    chain = np.array([[1, 1, 0]] * 11 + [[0, 1, 1]] * 11 + [[1, 0, 0]] * 5, dtype=bool)
    # rna-atac paired, adt alone
    island = np.array([[1, 1, 0]] * 11 + [[0, 0, 1]] * 20, dtype=bool)
    assert bridged_modality_groups(paired) == [[0, 1]]
    assert bridged_modality_groups(diagonal) == [[0], [1]]
    assert bridged_modality_groups(chain) == [[0, 1, 2]]
    assert bridged_modality_groups(island) == [[0, 1], [2]]
    priors = [default_prior(p, [2000] * p.shape[1]) for p in (paired, diagonal, chain, island)]
    assert priors == ["normal", "mixture", "normal", "mixture"]
    assert default_prior(island, [2000, 2000, 134]) == "normal"  # a small modality
    assert default_prior(np.ones((30, 1), dtype=bool), [2000]) == "normal"


@pytest.fixture
def snareseq_diagonal(snareseq_small, snareseq_batches):
    """RNA-only and ATAC-only samples of the small SNARE-seq mosaic: no cell measures both."""
    mosaic = snareseq_small()
    keep = ~mosaic.obs["batch"].isin(snareseq_batches[:4]).to_numpy()
    diagonal = mosaic[keep].copy()
    diagonal.update()
    return diagonal


def test_diagonal_defaults_are_resolved_logged_stored_and_reloaded(
    snareseq_diagonal, train_quick, tmp_path, caplog
):
    from mosaicvi.model._options import upgrade_init_params

    diagonal = snareseq_diagonal
    graph = mosaicvi.data.guidance_graph(diagonal, gene_coordinates="GRCm38", key=None)
    mosaicvi.MosaicVI.setup_mudata(diagonal, batch_key="batch")
    with caplog.at_level("INFO", logger="mosaicvi.model._mosaicvi"):
        model = mosaicvi.MosaicVI(diagonal, n_latent=4, n_hidden=32, guidance_graph=graph)
    line = next(r.message for r in caplog.records if "alignment" in r.message)
    assert "decoder weight 1.0, loss weight 0.005" in line
    assert "prior mixture (modalities joined by paired cells: rna | atac)" in line
    stored = model.init_params_["non_kwargs"]
    assert stored["prior"] == "mixture"
    assert (stored["graph_kwargs"]["weight"], stored["graph_kwargs"]["loss_weight"]) == (1, 0.005)
    assert isinstance(model.module.prior, MixturePrior)
    assert model.module.graph_loss_weight == 0.005
    train_quick(model, max_epochs=1).save(tmp_path / "model")
    loaded = mosaicvi.MosaicVI.load(tmp_path / "model", adata=diagonal)
    assert isinstance(loaded.module.prior, MixturePrior)
    assert loaded.module.graph_loss_weight == 0.005
    np.testing.assert_allclose(
        loaded.get_latent_representation(), model.get_latent_representation(), atol=1e-6
    )
    chosen = mosaicvi.MosaicVI(
        diagonal,
        n_latent=4,
        n_hidden=32,
        prior="normal",
        guidance_graph=graph,
        graph_kwargs={"loss_weight": 0.02},
    )
    assert chosen.init_params_["non_kwargs"]["prior"] == "normal"
    assert chosen.module.graph_loss_weight == 0.02
    assert not isinstance(chosen.module.prior, MixturePrior)
    # files from before these were resolved keep the old defaults
    old = upgrade_init_params({"n_latent": 4, "graph_kwargs": {"weight": 0.99}})
    assert (old["prior"], old["graph_kwargs"]) == ("normal", {"weight": 0.99, "loss_weight": 0.02})


def test_small_or_bridged_modalities_keep_the_paired_defaults(synthetic_mosaic):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    bridged = mosaicvi.MosaicVI(synthetic_mosaic, n_latent=4, n_hidden=32)
    assert bridged.init_params_["non_kwargs"]["prior"] == "normal"
    mods = {  # RNA of b1 and ADT of b2 only: unpaired, but 60 genes and 15 proteins
        m: synthetic_mosaic[m][(synthetic_mosaic[m].obs["batch"] == b).to_numpy()].copy()
        for m, b in (("rna", "b1"), ("adt", "b2"))
    }
    import mudata

    small = mudata.MuData(mods)
    mosaicvi.MosaicVI.setup_mudata(small, batch_key="batch")
    graph = build_graph(small, ["rna", "adt"], key=None)
    model = mosaicvi.MosaicVI(small, n_latent=4, n_hidden=32, guidance_graph=graph)
    stored = model.init_params_["non_kwargs"]
    assert stored["prior"] == "normal"
    assert stored["graph_kwargs"]["weight"] == 0.99
    assert stored["graph_kwargs"]["loss_weight"] == 0.02


def test_graph_weight_reaches_decoders(synthetic_mosaic):
    graph = build_graph(synthetic_mosaic, key=None)
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = mosaicvi.MosaicVI(synthetic_mosaic, guidance_graph=graph)
    assert {d.graph_weight for d in model.module.decoders.values()} == {0.9}
    model = mosaicvi.MosaicVI(synthetic_mosaic, guidance_graph=graph, graph_kwargs={"weight": 0.5})
    assert {d.graph_weight for d in model.module.decoders.values()} == {0.5}


def test_graph_loss_pulls_linked_embeddings_together(synthetic_mosaic, train_quick):
    graph = build_graph(synthetic_mosaic, key=None)
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    # The synthetic genes and peaks share no biology, so the data do not help the graph: a strong
    # graph weight shows the loss itself moves the embeddings.
    model = mosaicvi.MosaicVI(
        synthetic_mosaic, guidance_graph=graph, n_latent=6, graph_kwargs={"loss_weight": 0.5}
    )

    def linked_minus_random() -> float:
        v = torch.nn.functional.normalize(model.module.graph_encoder().loc.detach(), dim=1)
        names = np.concatenate([model.feature_names[m] for m in model.modalities])
        index = pd.Index(names)
        links = synthetic_links()
        s = index.get_indexer(links["source"])
        t = index.get_indexer(links["target"])
        rng = np.random.default_rng(0)
        r = rng.integers(0, len(names), size=(2, 2000))
        return float((v[s] * v[t]).sum(1).mean() - (v[r[0]] * v[r[1]]).sum(1).mean())

    before = linked_minus_random()
    train_quick(model, max_epochs=8, batch_size=64, lr=1e-2)
    after = linked_minus_random()
    nll = model.history["graph_nll_train"].to_numpy(dtype=float).ravel()
    assert nll[-1] < nll[0]
    assert after > before + 0.4


def test_latent_from_chosen_modalities(synthetic_mosaic, train_quick):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = train_quick(mosaicvi.MosaicVI(synthetic_mosaic), max_epochs=1)
    presence = synthetic_mosaic.obsm["_mosaicvi_presence"]
    trimodal = np.flatnonzero(presence.all(axis=1).to_numpy())
    full = model.get_latent_representation(indices=trimodal)
    rna_only = model.get_latent_representation(indices=trimodal, modalities=["rna"])
    assert rna_only.shape == full.shape
    assert not np.allclose(rna_only, full)
    rna_cells = np.flatnonzero((presence["rna"] & ~presence["atac"] & ~presence["adt"]).to_numpy())
    np.testing.assert_allclose(
        model.get_latent_representation(indices=rna_cells, modalities=["rna", "atac"]),
        model.get_latent_representation(indices=rna_cells),
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="measured none of"):
        model.get_latent_representation(modalities=["atac"])
    with pytest.raises(ValueError, match="must name some of"):
        model.get_latent_representation(modalities=["protein"])


def test_new_data_with_other_features_is_refused(synthetic_mosaic, train_quick):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = train_quick(mosaicvi.MosaicVI(synthetic_mosaic), max_epochs=1)
    other = synthetic_mosaic.copy()
    other.mod["rna"] = other["rna"][:, ::-1].copy()
    other.update()
    with pytest.raises(ValueError, match="Modality 'rna' of the data has other features"):
        model.get_latent_representation(other)


def test_feature_links_score_the_graph_links_between_modalities(graph_model, synthetic_mosaic):
    mdata = synthetic_mosaic
    j_rna, j_atac = np.arange(mdata["rna"].n_vars), np.arange(mdata["atac"].n_vars)
    mdata["rna"].var = mdata["rna"].var.assign(
        chrom="1", start=3000 * j_rna, end=3000 * j_rna + 100
    )
    mdata["atac"].var = mdata["atac"].var.assign(
        chrom="chr1", start=1000 * j_atac, end=1000 * j_atac + 500
    )
    links = graph_model.get_feature_links()
    assert len(links) == 75  # 60 gene-peak and 15 gene-protein links, no self-loops
    assert list(links.columns) == [
        "source",
        "target",
        "source_modality",
        "target_modality",
        "similarity",
        "distance",
        "weight",
        "sign",
    ]
    assert links["similarity"].is_monotonic_decreasing
    expected = set(map(tuple, synthetic_links().to_numpy()))
    assert set(zip(links["source"], links["target"], strict=True)) == expected
    embeddings = graph_model.get_feature_embeddings()
    row = links[(links["source"] == "gene1") & (links["target"] == "peak4")].iloc[0]
    gene, peak = embeddings["rna"].loc["gene1"], embeddings["atac"].loc["peak4"]
    cosine = gene @ peak / np.linalg.norm(gene) / np.linalg.norm(peak)
    assert row["similarity"] == pytest.approx(cosine, rel=1e-5)
    assert row["distance"] == 900  # gene [3000, 3100), peak [4000, 4500)
    assert links.loc[links["target"] == "peak3", "distance"].tolist() == [0.0]  # overlap
    assert links.loc[links["target_modality"] == "adt", "distance"].isna().all()
    assert (links["weight"] > 0).all() and (links["sign"] == 1).all()

    gene1 = graph_model.get_feature_links(features="gene1")
    assert sorted(gene1["target"]) == ["peak3", "peak4", "peak5", "prot1"]
    assert len(graph_model.get_feature_links(modalities=["rna", "atac"])) == 60
    strong = graph_model.get_feature_links(min_similarity=0.5)
    assert (strong["similarity"] >= 0.5).all()
    with pytest.raises(ValueError, match=r"`features` \['Gad1'\] are not features of the model"):
        graph_model.get_feature_links(features="Gad1")
