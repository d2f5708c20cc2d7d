"""Integrate a mosaic of RNA-only, ATAC-only and paired cells with MosaicVI, then cluster and plot.

The embedded SNARE-seq mouse cortex data set (RNA + ATAC in the same 10,309 cells, 12 batches) is
turned into a mosaic: 4 batches keep both modalities, 4 keep only RNA and 4 keep only ATAC.
MosaicVI puts all cells into one latent space; scanpy builds the neighbour graph, Leiden clusters
and a UMAP on it. Written to ``--out`` (default ``results/demo``):

- ``umap.png``: UMAP coloured by cell type, batch, measured modalities and Leiden cluster;
- ``model/``: the trained model (``mosaicvi.MosaicVI.load(out / "model", adata=mdata)``);
- ``snareseq_mosaic_mosaicvi.h5mu``: the mosaic MuData with ``obsm["X_mosaicvi"]``,
  ``obsm["X_umap"]``, ``obsm["mosaicvi_attention"]`` (modality order in
  ``uns["mosaicvi_attention_modalities"]``), ``obs["leiden_mosaicvi"]`` and ``obs["modality_set"]`` (written by setup).

Run ``make demo`` (installs the project virtualenv first), or
``python scripts/demo.py --max-epochs 60 --seed 0 --accelerator auto --out results/demo``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import matplotlib
import scanpy as sc
import scvi

import mosaicvi


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/demo"), help="output folder")
    parser.add_argument("--max-epochs", type=int, default=60, help="training epochs (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu, ..."
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    matplotlib.use("Agg")  # write PNGs without a display
    args.out.mkdir(parents=True, exist_ok=True)
    scvi.settings.seed = args.seed
    start = time.perf_counter()

    paired = mosaicvi.data.snareseq()
    batches = sorted(paired.obs["batch"].astype(str).unique())
    mdata = mosaicvi.data.mosaic_split(
        paired, {"rna": batches[:8], "atac": batches[:4] + batches[8:]}
    )
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch", labels_key="cell_type")
    print(f"Mosaic layout: {mdata.n_obs:,} cells in {len(batches)} batches")
    for combo, cells in mdata.obs.groupby("modality_set", observed=True):
        in_batches = ", ".join(sorted(cells["batch"].unique()))
        print(f"  {combo:<9} {len(cells):>6,} cells  batches {in_batches}")

    model = mosaicvi.MosaicVI(mdata)
    train_start = time.perf_counter()
    model.train(max_epochs=args.max_epochs, accelerator=args.accelerator)
    train_time = time.perf_counter() - train_start
    n_epochs = len(model.history["elbo_train"])

    mdata.obsm["X_mosaicvi"] = model.get_latent_representation()
    attention = model.get_attention_weights()
    mdata.obsm["mosaicvi_attention"] = attention.to_numpy()
    mdata.uns["mosaicvi_attention_modalities"] = list(attention.columns)
    both = (mdata.obs["modality_set"] == "+".join(model.modalities)).to_numpy()
    mean_attention = ", ".join(f"{m} {w:.2f}" for m, w in attention[both].mean().items())
    print(f"Mean attention weights in cells with every modality: {mean_attention}")

    sc.pp.neighbors(mdata, use_rep="X_mosaicvi")
    sc.tl.leiden(
        mdata,
        key_added="leiden_mosaicvi",
        flavor="igraph",
        n_iterations=2,
        directed=False,
        random_state=args.seed,
    )
    sc.tl.umap(mdata, random_state=args.seed)

    umap_png = args.out / "umap.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        fig = sc.pl.umap(
            mdata,
            color=["cell_type", "batch", "modality_set", "leiden_mosaicvi"],
            ncols=2,
            wspace=0.5,
            show=False,
            return_fig=True,
        )
    fig.savefig(umap_png, dpi=110, bbox_inches="tight")

    model_dir = args.out / "model"
    model.save(model_dir, overwrite=True)
    for column in mdata.obs.columns:  # h5mu needs categorical (or plain string) obs columns
        if mdata.obs[column].dtype == object:
            mdata.obs[column] = mdata.obs[column].astype(str).astype("category")
    h5mu = args.out / "snareseq_mosaic_mosaicvi.h5mu"
    mdata.write(h5mu)

    total = time.perf_counter() - start
    print(
        f"Done in {total:.0f} s (training {train_time:.0f} s, {n_epochs} epochs, {model.device}): "
        f"UMAP {umap_png}, model {model_dir}/, MuData {h5mu}"
    )


if __name__ == "__main__":
    main()
