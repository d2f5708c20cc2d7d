"""Do CITE-seq and Multiome cells meet by type when both RNA panels are kept whole?

The three-modality BMMC starter mosaic (``mosaicvi.data.neurips2021_bmmc_starter``: 500 10x
Multiome cells with RNA + ATAC, 600 CITE-seq cells with RNA + 134 proteins, two donor samples
each, every sample of each assay its own batch). The two assays' RNA panels share 76 of 1,524
genes. Two ways to build the RNA modality, same seed, epochs and model:

- ``intersection``: the 76 genes both panels measured (what a modality needed before feature
  masks);
- ``union + masks``: every gene of both panels (``mosaicvi.data.concat_panels``) with the
  feature mask passed to ``setup_mudata(feature_masks=...)``, so a gene a batch did not measure
  is never read as a zero.

Both use the guidance graph ``mosaicvi.data.guidance_graph`` builds from the data (gene-peak
links by position, gene-protein links by name), which the gene panel decides.

Score: cross-assay kNN label agreement on the coarse cell types both assays annotate
(:data:`COARSE`: T, NK/ILC, B, monocyte, erythroid, progenitor, DC, plasma; the assays'
annotations differ in resolution). For each cell of a shared type, its ``k`` nearest cells of
the *other* assay (among cells of shared types) in the latent space; the agreement is the
fraction of them of its coarse type, averaged over the cells of each assay
(``CITE->Multiome``, ``Multiome->CITE``) and over both (``mean``). ``chance`` is that mean with
neighbours drawn at random (the coarse types' frequencies in the two assays). Also: ``within``
(the same score among the cells of one assay, averaged over the two: whether the types stay
apart) and the guidance graph's cross-modality links.

Writes ``bmmc_panels<tag>.csv`` (one row per run) and ``.md`` (mean and SD over seeds).
"""

from __future__ import annotations

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import scvi
from _runner import append_seed_summary, settings_header, train, write_results
from sklearn.neighbors import NearestNeighbors

import mosaicvi

EPOCHS = 80
BATCH_SIZE = 128
SEEDS = "0,1,2"

#: Coarse type of each annotation of the two assays (prefix match, first hit wins).
COARSE = (
    ("CD4+ T", "T"),
    ("CD8+ T", "T"),
    ("gdT", "T"),
    ("MAIT", "T"),
    ("T reg", "T"),
    ("NK", "NK/ILC"),
    ("ILC", "NK/ILC"),
    ("Naive CD20+ B", "B"),
    ("B1 B", "B"),
    ("Transitional B", "B"),
    ("CD14+ Mono", "Monocyte"),
    ("CD16+ Mono", "Monocyte"),
    ("Erythroblast", "Erythroid"),
    ("Normoblast", "Erythroid"),
    ("Proerythroblast", "Erythroid"),
    ("Reticulocyte", "Erythroid"),
    ("HSC", "Progenitor"),
    ("MK/E prog", "Progenitor"),
    ("G/M prog", "Progenitor"),
    ("Lymph prog", "Progenitor"),
    ("ID2-hi myeloid prog", "Progenitor"),
    ("pDC", "DC"),
    ("cDC2", "DC"),
    ("Plasma", "Plasma"),
)


def coarse_type(label: str) -> str:
    """The coarse type of a BMMC annotation (``"other"`` when none matches)."""
    return next((coarse for prefix, coarse in COARSE if str(label).startswith(prefix)), "other")


def bmmc_mosaic(panels: str) -> tuple[mudata.MuData, dict | None]:
    """The mosaic with RNA as the panels' ``"intersection"`` or ``"union"`` (and its masks)."""
    parts = mosaicvi.data.neurips2021_bmmc_starter()
    for name, adata in parts.items():
        adata.X = adata.layers["counts"].copy()
        adata.obs["batch"] = name.split("_")[0] + "_" + adata.obs["batch"].astype(str)
        adata.obs["assay"] = name.split("_")[0]
    # protein names like CD52 are also gene names; the graph strips the suffix to link them
    parts["cite_adt"].var_names = parts["cite_adt"].var_names + "_prot"
    panels_ = [parts["multiome_rna"], parts["cite_rna"]]
    if panels == "intersection":
        shared = panels_[0].var_names.intersection(panels_[1].var_names)
        rna, masks = ad.concat([p[:, shared] for p in panels_], merge="same"), None
    else:
        rna, mask = mosaicvi.data.concat_panels(panels_)
        masks = {"rna": mask}
    mdata = mudata.MuData({"rna": rna, "atac": parts["multiome_atac"], "adt": parts["cite_adt"]})
    mdata.obs["assay"] = rna.obs["assay"].reindex(mdata.obs_names).to_numpy()
    mdata.obs["cell_type"] = rna.obs["cell_type"].astype(str).reindex(mdata.obs_names).to_numpy()
    mdata.obs["coarse"] = [coarse_type(t) for t in mdata.obs["cell_type"]]
    return mdata, masks


def knn_agreement(z: np.ndarray, assay: np.ndarray, label: np.ndarray, k: int) -> dict:
    """Cross-assay and within-assay kNN agreement on the coarse types both assays have."""
    a, b = "cite", "multiome"
    shared = set(label[assay == a]) & set(label[assay == b]) - {"other"}
    keep = np.isin(label, sorted(shared))
    z, assay, label = z[keep], assay[keep], label[keep]
    scores = {}
    for source, target in ((a, b), (b, a)):
        src, tgt = np.flatnonzero(assay == source), np.flatnonzero(assay == target)
        _, idx = NearestNeighbors(n_neighbors=k).fit(z[tgt]).kneighbors(z[src])
        scores[f"{source}->{target}"] = float((label[tgt][idx] == label[src][:, None]).mean())
        _, own = NearestNeighbors(n_neighbors=k + 1).fit(z[src]).kneighbors(z[src])
        scores[f"within {source}"] = float((label[src][own[:, 1:]] == label[src][:, None]).mean())
    freq = {s: pd.Series(label[assay == s]).value_counts(normalize=True) for s in (a, b)}
    expected = {
        f"{s}->{t}": float((freq[s] * freq[t].reindex(freq[s].index, fill_value=0)).sum())
        for s, t in ((a, b), (b, a))
    }
    return {
        "agreement CITE->Multiome": scores[f"{a}->{b}"],
        "agreement Multiome->CITE": scores[f"{b}->{a}"],
        "agreement mean": (scores[f"{a}->{b}"] + scores[f"{b}->{a}"]) / 2,
        "chance": (expected[f"{a}->{b}"] + expected[f"{b}->{a}"]) / 2,
        "within assay": (scores[f"within {a}"] + scores[f"within {b}"]) / 2,
        "shared coarse types": len(shared),
    }


def run_one(panels: str, seed: int, args, panel_dropout: float = 0.0) -> dict:
    """Train one model on the mosaic with ``panels`` RNA and score it."""
    mdata, masks = bmmc_mosaic(panels)
    graph = mosaicvi.data.guidance_graph(mdata, key=None)
    edges = graph.edges()
    cross = int((edges["source_modality"] != edges["target_modality"]).sum())
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch", feature_masks=masks)
    scvi.settings.seed = seed
    extra = {"panel_dropout": panel_dropout} if masks else {}
    model = mosaicvi.MosaicVI(mdata, guidance_graph=graph, **extra)
    timing = train(model, args)
    z = model.get_latent_representation()
    scores = knn_agreement(
        z, mdata.obs["assay"].to_numpy(), mdata.obs["coarse"].to_numpy(), args.k
    )
    return {
        "rna panels": panels if masks is None else f"{panels}, panel_dropout {panel_dropout:g}",
        "seed": seed,
        "rna genes": mdata["rna"].n_vars,
        "graph cross-modality edges": cross,
        **scores,
        "train time (s)": timing["train time (s)"],
    }


def add_arguments(parser) -> None:
    parser.add_argument("--k", type=int, default=15, help="neighbours (default: %(default)s)")
    parser.add_argument(
        "--panels",
        nargs="+",
        default=["intersection", "union + masks"],
        choices=["intersection", "union + masks"],
    )
    parser.add_argument(
        "--panel-dropout",
        type=float,
        nargs="+",
        default=[0.0, 0.5],
        help="`panel_dropout` values of the union runs (default: %(default)s)",
    )


def run(args) -> None:
    rows = []
    for seed in args.seeds:
        for panels in args.panels:
            for dropout in args.panel_dropout if panels != "intersection" else [0.0]:
                rows.append(run_one(panels, seed, args, dropout))
                print(rows[-1], flush=True)
    key = ["rna panels", "seed"]
    table = write_results(
        rows,
        args,
        "bmmc_panels",
        key,
        settings_header(
            args,
            f"BMMC starter three-modality mosaic, RNA as the two panels' intersection or their "
            f"union with feature masks; cross-assay {args.k}-NN label agreement on the shared "
            "coarse cell types",
        ),
        sort=key,
    )
    summary = append_seed_summary(table, "rna panels", args.out / f"bmmc_panels{args.tag}.md")
    print(summary.to_markdown(), flush=True)
