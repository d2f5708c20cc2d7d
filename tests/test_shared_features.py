"""Cross-species / cross-panel links: shared names or orthologs between same-kind modalities."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mosaicvi

DATA = Path(__file__).parent / "data"
PANELS = {
    "adt_panel_a": "scvi_test_pbmc_10k_protein_v3_200cells.h5ad",
    "adt_panel_b": "scvi_test_pbmc_5k_protein_v3_200cells.h5ad",
}
KINDS = {"adt_panel_a": "adt", "adt_panel_b": "adt"}
SYMBOLS = {"adt_panel_a": "protein", "adt_panel_b": "protein"}


def _panel(name: str, file: str) -> ad.AnnData:
    """One 10x protein panel as its own modality; var_names suffixed to be unique."""
    adata = ad.read_h5ad(DATA / file)
    proteins = [str(p) for p in adata.uns["protein_names"]]
    return ad.AnnData(
        sp.csr_matrix(adata.obsm["protein_expression"].astype(np.float32)),
        obs=pd.DataFrame({"batch": name}, index=f"{name}_" + adata.obs_names),
        var=pd.DataFrame({"protein": proteins}, index=[f"{p}_{name[-1]}" for p in proteins]),
    )


@pytest.fixture(scope="module")
def panels() -> mudata.MuData:
    mdata = mudata.MuData({name: _panel(name, file) for name, file in PANELS.items()})
    mdata.obs["batch"] = np.repeat(list(PANELS), [200, 200])
    return mdata


def _species(n_shared: int = 20, rng_seed: int = 0) -> mudata.MuData:
    """Human genes GENE0..; mouse has the title-case symbols of the first ``n_shared`` plus its
    own genes; each species has its own cells (no paired cell)."""
    rng = np.random.default_rng(rng_seed)
    human = [f"GENE{i}" for i in range(30)]
    mouse = [f"Gene{i}" for i in range(n_shared)] + [f"Mmgene{i}" for i in range(8)]

    def counts(n_cells, n_genes):
        return sp.csr_matrix(rng.poisson(2.0, (n_cells, n_genes)).astype(np.float32))

    mods = {
        "rna_human": ad.AnnData(
            counts(60, len(human)),
            obs=pd.DataFrame(index=[f"h{i}" for i in range(60)]),
            var=pd.DataFrame(index=human),
        ),
        "rna_mouse": ad.AnnData(
            counts(50, len(mouse)),
            obs=pd.DataFrame(index=[f"m{i}" for i in range(50)]),
            var=pd.DataFrame(index=mouse),
        ),
    }
    mdata = mudata.MuData(mods)
    mdata.obs["batch"] = ["human"] * 60 + ["mouse"] * 50
    return mdata


def test_panels_link_the_14_shared_proteins(panels):
    found = mosaicvi.data.shared_feature_links(
        panels, "adt_panel_a", "adt_panel_b", symbols=SYMBOLS, normalize="protein"
    )
    assert len(found.edges) == 14
    assert found.ambiguous.empty
    assert set(found.edges["name"]) >= {"cd3", "cd8a", "pd-1", "cd45ra"}
    # Each edge joins the same protein of the two panels.
    assert all(
        s[: -len("_a")] == t[: -len("_b")]
        for s, t in zip(found.edges["source"], found.edges["target"], strict=True)
    )
    summary = found.summary()
    assert summary["unlinked adt_panel_a"] == 0 and summary["unlinked adt_panel_b"] == 15
    # Without the protein normalisation the suffixed var_names share nothing.
    with pytest.raises(ValueError, match="no name is shared"):
        mosaicvi.data.shared_feature_links(panels, "adt_panel_a", "adt_panel_b")


def test_graph_ties_two_panels_and_the_model_trains(panels, train_quick):
    found = mosaicvi.data.shared_feature_links(
        panels, "adt_panel_a", "adt_panel_b", symbols=SYMBOLS, normalize="protein"
    )
    mdata = panels.copy()
    graph = mosaicvi.data.guidance_graph(mdata, KINDS, links=found.links, key=None)
    assert graph.summary().loc["adt_panel_a", "edges_adt_panel_b"] == 14
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch", modalities=KINDS)
    model = mosaicvi.MosaicVI(mdata, guidance_graph=graph, n_latent=8)
    assert {m: lik.name for m, lik in model.module.likelihoods.items()} == {
        "adt_panel_a": "nb",
        "adt_panel_b": "nb",
    }
    train_quick(model, max_epochs=2)
    graph_nll = model.history["graph_nll_train"].to_numpy(dtype=float)
    assert np.isfinite(graph_nll).all() and (graph_nll > 0).all()
    z = model.get_latent_representation()
    assert z.shape == (400, 8) and np.isfinite(z).all()
    embeddings = model.get_feature_embeddings()
    assert set(embeddings) == set(KINDS)
    # The links reach the model: a linked pair (its only link) shares one embedding after the
    # graph encoder's propagation step; the other cross-panel pairs do not.
    a = embeddings["adt_panel_a"].to_numpy()
    b = embeddings["adt_panel_b"].to_numpy()
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cosine = a @ b.T
    linked = np.zeros_like(cosine, dtype=bool)
    rows = embeddings["adt_panel_a"].index.get_indexer(found.edges["source"])
    cols = embeddings["adt_panel_b"].index.get_indexer(found.edges["target"])
    linked[rows, cols] = True
    assert cosine[linked].min() > 0.99 > cosine[~linked].mean()


def test_species_case_insensitive_one_to_one():
    mdata = _species()
    found = mosaicvi.data.shared_feature_links(mdata, "rna_human", "rna_mouse")
    assert len(found.edges) == 20
    pairs = set(zip(found.edges["source"], found.edges["target"], strict=True))
    assert ("GENE3", "Gene3") in pairs
    assert list(found.unlinked["rna_mouse"]) == [f"Mmgene{i}" for i in range(8)]
    graph = mosaicvi.data.guidance_graph(
        mdata, {"rna_human": "rna", "rna_mouse": "rna"}, links=found.links, key=None
    )
    assert graph.summary().loc["rna_mouse", "edges_rna_human"] == 20


def test_ambiguous_names_are_reported_not_linked():
    mdata = _species()
    mouse = mdata.mod["rna_mouse"]
    names = list(mouse.var_names)
    names[-1] = "GENE5"  # "Gene5" and "GENE5" now both match human GENE5
    mouse.var_names = names
    mdata.update()
    with pytest.warns(UserWarning, match="not one-to-one"):
        found = mosaicvi.data.shared_feature_links(mdata, "rna_human", "rna_mouse")
    assert len(found.edges) == 19
    assert set(found.ambiguous["target"]) == {"Gene5", "GENE5"}
    assert (found.ambiguous["reason"] == "rna_human feature has 2 candidates").all()
    everything = mosaicvi.data.shared_feature_links(
        mdata, "rna_human", "rna_mouse", one_to_one=False
    )
    assert len(everything.edges) == 21 and everything.ambiguous.empty


def test_ortholog_table():
    mdata = _species(n_shared=0)  # no shared names: only the table links
    table = pd.DataFrame(
        {
            "human": ["GENE0", "GENE1", "GENE2", "GENE2", "NOT_MEASURED"],
            "mouse": ["Mmgene0", "mmgene1", "Mmgene2", "Mmgene3", "Mmgene4"],
        }
    )
    with pytest.warns(UserWarning, match="2 candidate pairs"):
        found = mosaicvi.data.shared_feature_links(mdata, "rna_human", "rna_mouse", table)
    assert list(zip(found.edges["source"], found.edges["target"], strict=True)) == [
        ("GENE0", "Mmgene0"),
        ("GENE1", "Mmgene1"),
    ]
    assert set(found.ambiguous["target"]) == {"Mmgene2", "Mmgene3"}
    assert found.n_table_rows_unmeasured == 1
    # Columns named after the modalities, in any order.
    named = table.rename(columns={"human": "rna_human", "mouse": "rna_mouse"})[
        ["rna_mouse", "rna_human"]
    ]
    again = mosaicvi.data.shared_feature_links(
        mdata, "rna_human", "rna_mouse", named, one_to_one=False
    )
    assert len(again.edges) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "rna_human"}, "two different modalities"),
        ({"target": "rna_rat"}, "not a modality"),
        ({"symbols": {"rna_human": "symbol"}}, "not a column"),
        ({"normalize": "upper"}, "`normalize`"),
        ({"orthologs": pd.DataFrame({"a": ["x"], "b": ["y"], "c": ["z"]})}, "two columns"),
        ({"orthologs": pd.DataFrame({"a": ["NOPE"], "b": ["Gene1"]})}, "no row of `orthologs`"),
    ],
)
def test_bad_input(kwargs, message):
    mdata = _species()
    kwargs = {"source": "rna_human", "target": "rna_mouse", **kwargs}
    with pytest.raises(ValueError, match=message):
        mosaicvi.data.shared_feature_links(mdata, **kwargs)
