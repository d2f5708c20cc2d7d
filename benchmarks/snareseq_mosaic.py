"""MosaicVI vs scvi-tools MULTIVI on the SNARE-seq mosaic, side by side in one run.

SNARE-seq mouse cortex (10,309 cells, 12 samples) split into 4 paired (RNA+ATAC), 4 RNA-only and
4 ATAC-only samples. Both models train for the same number of epochs with the same batch size;
both latents are scored with scib-metrics' Benchmarker (batch = the 12 samples, label =
``cell_type``), next to an unintegrated baseline (PCA of the zero-padded, normalised RNA and
TF-IDF ATAC features).

Usage::

    python benchmarks/snareseq_mosaic.py --epochs 30 --batch-size 128

Prints one markdown table and writes it (and a CSV) to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import platform
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
import scvi
import torch
from _metrics import scib_scores
from _mosaic_data import snareseq_mosaic, zero_padded
from _multivi_runner import train_multivi, train_timed
from anndata import AnnData

import mosaicvi


def unintegrated_pca(padded, n_comps: int = 30, seed: int = 0) -> np.ndarray:
    """PCA of [log-normalised RNA | TF-IDF ATAC] with zero rows for missing modalities."""
    blocks = []
    for name, adata in padded.mod.items():
        a = adata.copy()
        if name == "atac":
            a.X.data[:] = 1.0
            idf = a.n_obs / (1.0 + np.asarray((a.X > 0).sum(0)).ravel())
            a.X = a.X.multiply(idf).tocsr()
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
        blocks.append(a.X)
    joined = AnnData(sp.hstack(blocks).tocsr())
    sc.pp.pca(joined, n_comps=n_comps, random_state=seed)
    return joined.obsm["X_pca"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--skip-multivi", action="store_true")
    parser.add_argument(
        "--closed-feature-fractions",
        default="",
        help="comma-separated `closed_feature_fraction` values: one more MosaicVI row each",
    )
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)

    mosaic, layout = snareseq_mosaic()
    print(
        f"SNARE-seq mosaic: {mosaic.n_obs} cells; RNA in {layout['rna']}; ATAC in {layout['atac']}"
    )
    timings = {}

    scvi.settings.seed = args.seed
    mosaicvi.MosaicVI.setup_mudata(mosaic, batch_key="batch", labels_key="cell_type")
    model = mosaicvi.MosaicVI(mosaic)
    timings["MosaicVI"] = train_timed(model, args.epochs, args.batch_size)
    latents = {"MosaicVI": model.get_latent_representation()}
    for fraction in filter(None, args.closed_feature_fractions.split(",")):
        name = f"MosaicVI, closed_feature_fraction={float(fraction):g}"
        scvi.settings.seed = args.seed
        model = mosaicvi.MosaicVI(mosaic, closed_feature_fraction=float(fraction))
        timings[name] = train_timed(model, args.epochs, args.batch_size)
        latents[name] = model.get_latent_representation()

    padded = zero_padded(mosaic)
    if not args.skip_multivi:
        multivi, timings["MULTIVI"] = train_multivi(
            padded, args.epochs, args.batch_size, seed=args.seed
        )
        latents["MULTIVI"] = multivi.get_latent_representation()

    embeddings = {"Unintegrated": unintegrated_pca(padded, seed=args.seed), **latents}
    scores = scib_scores(mosaic.obs, embeddings, "batch", "cell_type", n_jobs=args.n_jobs)

    rows = []
    for name in ["Unintegrated", *latents]:
        seconds, rate = timings.get(name, (np.nan, np.nan))
        rows.append(
            {
                "method": name,
                "bio conservation": scores.loc[name, "Bio conservation"],
                "batch correction": scores.loc[name, "Batch correction"],
                "total": scores.loc[name, "Total"],
                "train time (s)": seconds,
                "training cells/s": rate,
            }
        )
    table = pd.DataFrame(rows).set_index("method")
    header = (
        f"SNARE-seq mosaic (4 paired / 4 RNA-only / 4 ATAC-only samples, {mosaic.n_obs} cells), "
        f"{args.epochs} epochs, batch size {args.batch_size}, seed {args.seed}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"scvi-tools {scvi.__version__}, mosaicvi {mosaicvi.__version__}"
    )
    markdown = header + "\n\n" + table.to_markdown(floatfmt=".3f") + "\n"
    print(markdown)
    stem = f"snareseq_mosaic{args.tag}"
    (args.out / f"{stem}.md").write_text(markdown)
    table.to_csv(args.out / f"{stem}.csv")
    scores.to_csv(args.out / f"{stem}_all_metrics.csv")


if __name__ == "__main__":
    main()
