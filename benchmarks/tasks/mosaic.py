"""MosaicVI vs scvi-tools MULTIVI on the SNARE-seq mosaic: scib-metrics and training speed.

SNARE-seq mouse cortex (10,309 cells, 12 samples) split into 4 paired (RNA+ATAC), 4 RNA-only and
4 ATAC-only samples. Both models train for the same epochs with the same batch size; their
latents are scored with scib-metrics' Benchmarker (batch = the 12 samples, label = ``cell_type``)
next to an unintegrated baseline (PCA of the zero-padded, normalised RNA and TF-IDF ATAC).
``--knn`` adds fast latent diagnostics: a 15-NN vote from paired cells to RNA-only and ATAC-only
cells, the share of each cell's 15 neighbours from another sample group (about 0.66 when the
groups mix perfectly) and of the same cell type, and the mean attention weights of paired cells.

Writes ``snareseq_mosaic<tag>.md`` / ``.csv`` and every scib metric to
``snareseq_mosaic<tag>_all_metrics.csv``.
"""

from __future__ import annotations

import numpy as np
from _data import sample_groups, snareseq_mosaic, unintegrated_pca
from _metrics import scib_scores
from _models import train_mosaicvi_runs, train_multivi
from _runner import seeds, settings_header, write_results
from sklearn.neighbors import NearestNeighbors

import mosaicvi

EPOCHS = 30
#: scib column -> this table's column (the names of the committed table).
SCIB = {"Bio conservation": "bio conservation", "Batch correction": "batch correction"}


def add_arguments(parser) -> None:
    parser.add_argument("--skip-multivi", action="store_true")
    parser.add_argument("--skip-scib", action="store_true", help="no scib-metrics columns")
    parser.add_argument(
        "--knn", action="store_true", help="add the kNN diagnostics of the module docstring"
    )


def knn_diagnostics(model, mosaic, layout, label: str = "cell_type") -> dict[str, float]:
    """kNN transfer from paired cells, neighbour group mixing and attention (see the docstring)."""
    z = model.get_latent_representation()
    groups = sample_groups(mosaic, layout)
    group = np.select([groups["paired"], groups["RNA-only"]], ["paired", "rna"], "atac")
    labels = mosaic.obs[label].astype(str).to_numpy()
    paired = groups["paired"]
    result = {}
    for name, cells in (("RNA-only", groups["RNA-only"]), ("ATAC-only", groups["ATAC-only"])):
        result[f"kNN acc paired->{name}"] = mosaicvi.metrics.knn_label_transfer(
            z[paired], labels[paired], z[cells], labels[cells]
        )[0]
    neighbours = NearestNeighbors(n_neighbors=16).fit(z).kneighbors(z, return_distance=False)
    neighbours = neighbours[:, 1:]
    result["other group frac"] = float((group[neighbours] != group[:, None]).mean())
    result["same type frac"] = float((labels[neighbours] == labels[:, None]).mean())
    attention = model.get_attention_weights()[paired].mean()
    result.update({f"attention {m} (paired)": float(w) for m, w in attention.items()})
    return result


def run(args) -> None:
    mosaic, _, layout = snareseq_mosaic(args)
    print(
        f"SNARE-seq mosaic: {mosaic.n_obs} cells; RNA in {layout['rna']}; ATAC in {layout['atac']}"
    )
    rows = []
    for seed in seeds(args):
        models = train_mosaicvi_runs(mosaic, args, labels_key="cell_type")
        latents = {name: m.get_latent_representation() for name, (m, _) in models.items()}
        timings = {name: timing for name, (_, timing) in models.items()}
        extra = {}
        if args.knn:
            extra = {name: knn_diagnostics(m, mosaic, layout) for name, (m, _) in models.items()}
        if not args.skip_multivi:
            multivi, _, timings["MULTIVI"] = train_multivi(mosaic, args)
            latents["MULTIVI"] = multivi.get_latent_representation()
        scores = None
        if not args.skip_scib:
            embeddings = {"Unintegrated": unintegrated_pca(mosaic, seed=seed), **latents}
            scores = scib_scores(mosaic.obs, embeddings, "batch", "cell_type", n_jobs=args.n_jobs)
            scores.assign(seed=seed).to_csv(
                args.out / f"snareseq_mosaic{args.tag}_all_metrics.csv"
            )
        for name in (["Unintegrated"] if scores is not None else []) + list(latents):
            row = {"method": name, "seed": seed}
            if scores is not None:
                row.update({SCIB[k]: scores.loc[name, k] for k in SCIB})
                row["total"] = scores.loc[name, "Total"]
            rows.append({**row, **timings.get(name, {}), **extra.get(name, {})})
    header = settings_header(
        args,
        f"SNARE-seq mosaic (4 paired / 4 RNA-only / 4 ATAC-only samples, {mosaic.n_obs} cells): "
        "scib-metrics (raw, total = 0.6 bio + 0.4 batch) and training speed",
    )
    write_results(rows, args, "snareseq_mosaic", ["method", "seed"], header)
