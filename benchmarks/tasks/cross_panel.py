"""Do shared-name / ortholog links tie two same-kind modalities? Two ADT panels, two species.

Two experiments, each with and without the links of :func:`mosaicvi.data.shared_feature_links`
in the guidance graph (no other link: the two modalities share no cell), several seeds:

- **two 10x protein panels** (``tests/data``: PBMC 10k with 14 antibodies, PBMC 5k with 29; 14
  shared; 200 cells each, different donors). Each panel is its own ADT modality and batch. Cell
  labels (T, B, monocyte, NK) come from RNA marker genes of the same files (CD3E/CD3D/IL7R,
  MS4A1/CD79A/CD79B, LYZ/CD14/S100A8, NKG7/GNLY), which the model never sees.
- **synthetic two species**: human genes ``GENE0..`` and mouse genes whose symbols are the
  title case of 150 of them (``Gene0..``, their profiles the human ones times species noise) plus
  30 mouse-only and 50 human-only genes; 4 cell types, 300 cells per species.

Each modality is its own batch (one donor / species each). The main runs switch the batch
discriminator off (``batch_discriminator=False``); runs with it on (batch = modality, the
adversary's default here) are listed separately.

Scores (higher is better): cross-modality label transfer from
:func:`mosaicvi.metrics.latent_accuracy` (balanced accuracy of a linear classifier trained on
one modality's codes, scored on held-out cells of the other), and mixing: the fraction of each
cell's 15 nearest neighbours (in the joint latent) from the other modality, divided by that
modality's share of all cells (1 = perfectly mixed, 0 = separate).

Writes ``cross_panel_links<tag>.csv`` (one row per run) and ``.md`` (mean and SD over seeds).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
import scvi
from _runner import merge, settings_header, train, write_results
from sklearn.neighbors import NearestNeighbors

import mosaicvi

DATA = Path(__file__).parents[2] / "tests" / "data"
EPOCHS = 100
BATCH_SIZE = 64
SEEDS = "0,1,2"
PANELS = {
    "adt_panel_a": "scvi_test_pbmc_10k_protein_v3_200cells.h5ad",
    "adt_panel_b": "scvi_test_pbmc_5k_protein_v3_200cells.h5ad",
}
MARKERS = {
    "T": ["CD3E", "CD3D", "IL7R"],
    "B": ["MS4A1", "CD79A", "CD79B"],
    "Mono": ["LYZ", "CD14", "S100A8"],
    "NK": ["NKG7", "GNLY"],
}


def marker_labels(adata: ad.AnnData) -> np.ndarray:
    """Coarse type of each cell: the marker set with the highest mean log-normalised RNA."""
    rna = adata.copy()
    sc.pp.normalize_total(rna, target_sum=1e4)
    sc.pp.log1p(rna)
    scores = pd.DataFrame(
        {
            t: np.asarray(rna[:, [g for g in genes if g in rna.var_names]].X.mean(1)).ravel()
            for t, genes in MARKERS.items()
        }
    )
    return scores.idxmax(axis=1).to_numpy()


def protein_panels() -> tuple[mudata.MuData, dict, dict]:
    """The two panels as modalities ``adt_panel_a`` / ``adt_panel_b`` and their links' arguments."""
    mods = {}
    for name, file in PANELS.items():
        adata = ad.read_h5ad(DATA / file)
        proteins = [str(p) for p in adata.uns["protein_names"]]
        mods[name] = ad.AnnData(
            sp.csr_matrix(adata.obsm["protein_expression"].astype(np.float32)),
            obs=pd.DataFrame(
                {"batch": name, "label": marker_labels(adata)},
                index=f"{name}_" + adata.obs_names,
            ),
            var=pd.DataFrame({"protein": proteins}, index=[f"{p}_{name[-1]}" for p in proteins]),
        )
    mdata = mudata.MuData(mods)
    for column in ("batch", "label"):
        mdata.obs[column] = np.concatenate([mods[m].obs[column].to_numpy() for m in mods])
    symbols = dict.fromkeys(mods, "protein")
    return mdata, {"symbols": symbols, "normalize": "protein"}, dict.fromkeys(mods, "adt")


def two_species(seed: int = 0) -> tuple[mudata.MuData, dict, dict]:
    """Synthetic human / mouse RNA (see the module docstring); no cell has both."""
    rng = np.random.default_rng(seed)
    n_types, n_cells, n_orthologs = 4, 300, 150
    human_only, mouse_only = 50, 30
    human_profiles = rng.gamma(0.6, 2.0, (n_types, n_orthologs + human_only))
    divergence = rng.lognormal(0.0, 0.5, n_orthologs)  # per-gene species difference
    mouse_profiles = np.hstack(
        [
            human_profiles[:, :n_orthologs] * divergence,
            rng.gamma(0.6, 2.0, (n_types, mouse_only)),
        ]
    )
    mods = {}
    for species, type_profiles, genes in (
        ("rna_human", human_profiles, [f"GENE{i}" for i in range(human_profiles.shape[1])]),
        (
            "rna_mouse",
            mouse_profiles,
            [f"Gene{i}" for i in range(n_orthologs)] + [f"Mmu{i}" for i in range(mouse_only)],
        ),
    ):
        types = rng.integers(0, n_types, n_cells)
        library = rng.lognormal(0.0, 0.3, (n_cells, 1))
        counts = rng.poisson(type_profiles[types] * library).astype(np.float32)
        mods[species] = ad.AnnData(
            sp.csr_matrix(counts),
            obs=pd.DataFrame(
                {"batch": species, "label": [f"type{t}" for t in types]},
                index=[f"{species}_{i}" for i in range(n_cells)],
            ),
            var=pd.DataFrame(index=genes),
        )
    mdata = mudata.MuData(mods)
    for column in ("batch", "label"):
        mdata.obs[column] = np.concatenate([mods[m].obs[column].to_numpy() for m in mods])
    return mdata, {}, dict.fromkeys(mods, "rna")


def mixing(z: np.ndarray, modality: np.ndarray, k: int = 15) -> float:
    """Other-modality share of each cell's k nearest neighbours over its expected share."""
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z, return_distance=False)
    other = (modality[neighbours[:, 1:]] != modality[:, None]).mean(axis=1)
    expected = np.array([(modality != m).mean() for m in modality])
    return float(np.mean(other / expected))


def run_one(name, mdata, link_kwargs, kinds, links: bool, adversary: bool, seed, args) -> dict:
    """Train one model (with or without the links and the batch adversary) and score it."""
    a, b = kinds
    mdata = mdata.copy()
    found = mosaicvi.data.shared_feature_links(mdata, a, b, **link_kwargs)
    graph = mosaicvi.data.guidance_graph(
        mdata, kinds, links=found.links if links else None, key=None
    )
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch", modalities=kinds)
    scvi.settings.seed = seed
    model = mosaicvi.MosaicVI(
        mdata, guidance_graph=graph, n_latent=args.n_latent, batch_discriminator=adversary
    )
    timing = train(model, args)
    transfer = mosaicvi.metrics.latent_accuracy(
        model, "label", [a, b], metric="balanced_accuracy", seed=seed
    )
    z = model.get_latent_representation()
    return {
        "experiment": name,
        "links": len(found.edges) if links else 0,
        "batch adversary": adversary,
        "seed": seed,
        f"bACC within {a}": transfer.loc[a, a],
        f"bACC within {b}": transfer.loc[b, b],
        "bACC transfer a->b": transfer.loc[a, b],
        "bACC transfer b->a": transfer.loc[b, a],
        "mixing": mixing(z, mdata.obs["batch"].to_numpy()),
        "train time (s)": timing["train time (s)"],
    }


def add_arguments(parser) -> None:
    parser.add_argument(
        "--adversary-seeds",
        default="0",
        help="comma-separated seeds of the extra runs with links and the batch discriminator on",
    )
    parser.add_argument("--n-latent", type=int, default=8)
    parser.add_argument("--experiments", nargs="+", default=["panels", "species"])


def run(args) -> None:
    builders = {"panels": protein_panels, "species": two_species}
    adversary_seeds = [int(s) for s in args.adversary_seeds.split(",") if s]
    rows = []
    key = ["experiment", "batch adversary", "links", "seed"]
    for experiment in args.experiments:
        mdata, link_kwargs, kinds = builders[experiment]()
        for seed in args.seeds:
            conditions = [(True, False), (False, False)]
            conditions += [(True, True)] if seed in adversary_seeds else []
            for links, adversary in conditions:
                rows.append(
                    run_one(experiment, mdata, link_kwargs, kinds, links, adversary, seed, args)
                )
                print(rows[-1], flush=True)
    csv = args.out / f"cross_panel_links{args.tag}.csv"
    table = merge(pd.DataFrame(rows), csv, key, args.fresh)
    summary = table.drop(columns="seed").groupby(key[:3], sort=False).agg(["mean", "std"]).round(3)
    summary.columns = [f"{c} ({s})" for c, s in summary.columns]
    header = settings_header(
        args,
        f"Cross-panel / cross-species links, n_latent {args.n_latent}; mean and SD over the "
        "seeds of every run in the CSV",
    )
    notes = summary.reset_index().to_markdown(index=False)
    write_results(rows, args, "cross_panel_links", key, header, notes=notes)
