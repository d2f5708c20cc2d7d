"""Quick latent diagnostics on the SNARE-seq mosaic, for comparing MosaicVI settings.

Trains one MosaicVI configuration on the 4 paired / 4 RNA-only / 4 ATAC-only SNARE-seq mosaic and
prints one JSON line with kNN (k=15) label transfer from paired cells to RNA-only and ATAC-only
cells (``acc_rna``, ``acc_atac``), the fraction of each cell's 15 neighbours from another modality
group (``other_group_frac``; about 0.66 if groups mix perfectly) and of the same cell type
(``same_type_frac``), plus the mean attention weights of paired cells. Much faster than scib.

Usage::

    python benchmarks/snareseq_knn_diagnostics.py '{"epochs": 30, "train": {"batch_size": 128}}'

The JSON holds ``epochs``, ``train`` (keyword arguments of ``MosaicVI.train``) and any keyword
arguments of ``MosaicVI``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
import scvi
from _mosaic_data import snareseq_mosaic
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

import mosaicvi


def main() -> None:
    warnings.filterwarnings("ignore")
    config = json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}")
    epochs = config.pop("epochs", 30)
    train_kwargs = config.pop("train", {})
    scvi.settings.seed = 0
    mosaic, _ = snareseq_mosaic()
    mosaicvi.MosaicVI.setup_mudata(mosaic, batch_key="batch", labels_key="cell_type")
    model = mosaicvi.MosaicVI(mosaic, **config)
    start = time.perf_counter()
    model.train(max_epochs=epochs, early_stopping=False, enable_progress_bar=False, **train_kwargs)
    seconds = time.perf_counter() - start

    z = model.get_latent_representation()
    presence = mosaic.obsm["_mosaicvi_presence"].to_numpy()
    group = np.where(presence.all(1), "paired", np.where(presence[:, 0], "rna", "atac"))
    labels = mosaic.obs["cell_type"].astype(str).to_numpy()
    paired = group == "paired"
    knn = KNeighborsClassifier(15).fit(z[paired], labels[paired])
    result = {"config": sys.argv[1:], "seconds": round(seconds)}
    for name in ("rna", "atac"):
        cells = group == name
        result[f"acc_{name}"] = round(float((knn.predict(z[cells]) == labels[cells]).mean()), 3)
    neighbours = NearestNeighbors(n_neighbors=16).fit(z).kneighbors(z, return_distance=False)
    neighbours = neighbours[:, 1:]
    result["other_group_frac"] = round(float((group[neighbours] != group[:, None]).mean()), 3)
    result["same_type_frac"] = round(float((labels[neighbours] == labels[:, None]).mean()), 3)
    attention = model.get_attention_weights()[paired].mean().round(2).to_dict()
    result["attention_paired"] = attention
    print(json.dumps(result))


if __name__ == "__main__":
    main()
