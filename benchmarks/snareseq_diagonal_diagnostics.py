"""Diagnostics of the diagonal SNARE-seq runs: modality separation and ATAC posterior collapse.

Two modes:

- ``diagonal``: train MosaicVI on the diagonal split (6 RNA-only, 6 ATAC-only samples) with the
  given model / training options, then print FOSCTTM, RNA->ATAC label transfer, how well a kNN
  tells the modalities apart in the latent, within-modality label transfer (first three samples
  of a modality -> the other three), the discriminator loss per epoch and the mean latent norm
  of each modality.
- ``atac-only``: train on the ATAC of all 12 samples alone and print the cross-sample label
  transfer (samples 1-6 -> 7-12) and the mean per-dimension SD of the latent means.

Usage::

    python benchmarks/snareseq_diagonal_diagnostics.py diagonal --epochs 20 \\
        --model '{"graph_weight": 0.5}' --train '{"adversarial_strength": 25}'
    python benchmarks/snareseq_diagonal_diagnostics.py diagonal --epochs 20 --no-graph
    python benchmarks/snareseq_diagonal_diagnostics.py atac-only --epochs 20 \\
        --train '{"plan_kwargs": {"max_kl_weight": 0.1}}'
"""

from __future__ import annotations

import argparse
import json
import warnings

import mudata
import numpy as np
import scvi
from _metrics import foscttm, knn_label_transfer
from _mosaic_data import snareseq_diagonal
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

import mosaicvi

LABEL = "cell_type_coarse"


def train(model: mosaicvi.MosaicVI, args) -> None:
    model.train(
        max_epochs=args.epochs,
        early_stopping=False,
        enable_progress_bar=False,
        **json.loads(args.train),
    )


def diagonal(args) -> dict:
    data, paired, _ = snareseq_diagonal()
    graph = None
    if not args.no_graph:
        links = {("rna", "atac"): data["rna"].varm["gene_region_link"]}
        graph = mosaicvi.data.guidance_graph(data, links=links)
    mosaicvi.MosaicVI.setup_mudata(data, batch_key="batch")
    model = mosaicvi.MosaicVI(data, guidance_graph=graph, **json.loads(args.model))
    train(model, args)
    z = model.get_latent_representation()
    z_rna = model.get_latent_representation(paired, modalities=["rna"])
    z_atac = model.get_latent_representation(paired, modalities=["atac"])
    labels = data.obs[LABEL].astype(str).to_numpy()
    batch = data.obs["batch"].astype(str).to_numpy()
    is_rna = data.obs_names.isin(data["rna"].obs_names)
    within = {}
    for name, cells in (("rna", is_rna), ("atac", ~is_rna)):
        first = np.isin(batch, sorted(set(batch[cells]))[:3])
        within[name] = knn_label_transfer(
            z[cells & first], labels[cells & first], z[cells & ~first], labels[cells & ~first]
        )
    return {
        "foscttm": foscttm(z_rna, z_atac),
        "rna_to_atac": knn_label_transfer(z[is_rna], labels[is_rna], z[~is_rna], labels[~is_rna]),
        "modality_knn_accuracy": float(
            cross_val_score(KNeighborsClassifier(15), z, is_rna, cv=3).mean()
        ),
        "within_modality_transfer": within,
        "discriminator_loss": model.history["discriminator_loss_train"]
        .to_numpy(dtype=float)
        .ravel()
        .round(3)
        .tolist(),
        "latent_norm": {
            "rna": float(np.linalg.norm(z[is_rna], axis=1).mean()),
            "atac": float(np.linalg.norm(z[~is_rna], axis=1).mean()),
        },
        "latent_sd": {
            "rna": float(z[is_rna].std(0).mean()),
            "atac": float(z[~is_rna].std(0).mean()),
        },
    }


def atac_only(args) -> dict:
    paired = mosaicvi.data.snareseq()
    data = mudata.MuData({"atac": paired["atac"].copy()})
    data.obs["batch"] = paired.obs["batch"].to_numpy()
    mosaicvi.MosaicVI.setup_mudata(data, batch_key="batch")
    model = mosaicvi.MosaicVI(data, **json.loads(args.model))
    train(model, args)
    z = model.get_latent_representation()
    batch = data.obs["batch"].astype(str).to_numpy()
    labels = paired.obs[LABEL].astype(str).to_numpy()
    first = np.isin(batch, sorted(set(batch))[:6])
    return {
        "cross_sample_transfer": knn_label_transfer(
            z[first], labels[first], z[~first], labels[~first]
        ),
        "latent_sd": float(z.std(0).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["diagonal", "atac-only"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-graph", action="store_true")
    parser.add_argument("--model", default="{}", help="JSON of MosaicVI(...) arguments")
    parser.add_argument("--train", default="{}", help="JSON of model.train(...) arguments")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    scvi.settings.seed = args.seed
    result = diagonal(args) if args.mode == "diagonal" else atac_only(args)
    print(json.dumps({"args": vars(args), **result}, indent=1))


if __name__ == "__main__":
    main()
