"""Train a tiny MosaicVI with 2-process DDP on the CPU (gloo); each rank writes a JSON record.

Run by ``tests/test_ddp.py`` in a subprocess (Lightning's "ddp" re-launches this script for
rank 1). Usage: ``python tests/scripts/ddp_train.py OUT_DIR [STRATEGY] [labelled] [resident]``
(``resident``: ``load_data_on_device=True``).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scvi
import torch
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_synthetic_mosaic

import mosaicvi


class Record(Callback):
    """Count this rank's training steps and remember the cells it saw."""

    def __init__(self):
        self.steps = 0
        self.epochs = 0
        self.cells: set[int] = set()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps += 1
        self.cells.update(batch["ind_x"].view(-1).tolist() if "ind_x" in batch else [])

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs += 1


def checksum(tensors) -> float:
    return float(sum(t.detach().double().abs().sum() for t in tensors))


def main() -> None:
    out = Path(sys.argv[1])
    strategy = sys.argv[2] if len(sys.argv) > 2 else "ddp"
    labelled = "labelled" in sys.argv[3:]
    resident = "resident" in sys.argv[3:]
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    scvi.settings.seed = 0
    mdata = make_synthetic_mosaic()
    rng = np.random.default_rng(0)
    links = sp.random(60, 200, density=0.02, random_state=rng, format="csr")
    links.data[:] = 1.0
    graph = mosaicvi.data.guidance_graph(mdata, links={("rna", "atac"): links})
    setup = {"batch_key": "batch"}
    if labelled:
        for adata in mdata.mod.values():
            hidden = adata.obs_names.str.endswith(("0", "3", "6"))  # same cells in every modality
            adata.obs["label"] = np.where(hidden, "unknown", adata.obs["cell_type"].astype(str))
        setup.update(labels_key="label", unlabeled_category="unknown")
    mosaicvi.MosaicVI.setup_mudata(mdata, **setup)
    model = mosaicvi.MosaicVI(
        mdata, n_latent=4, n_hidden=16, n_hidden_decoder=16, guidance_graph=graph
    )
    record = Record()
    model.train(
        max_epochs=30,
        batch_size=32,
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        early_stopping=True,
        early_stopping_patience=2,
        early_stopping_min_delta=1e9,  # never "improves": stops after the patience, every rank
        callbacks=[record],
        load_data_on_device=resident,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer = model.trainer
    rank = trainer.global_rank
    module = model.module
    resident = getattr(trainer.datamodule, "resident", None)
    result = {
        "n_obs": mdata.n_obs,
        "resident_rows": None if resident is None else np.asarray(resident.rows).tolist(),
        "history_keys": sorted(model.history),
        "rank": rank,
        "world_size": trainer.world_size,
        "steps": record.steps,
        "epochs": record.epochs,
        "history_epochs": len(model.history.get("elbo_train", [])),
        "n_train": len(model.train_indices),
        "is_trained": model.is_trained,
        "parameters": checksum(module.parameters()),
        "buffers": checksum(b for b in module.buffers() if b.is_floating_point()),
        "latent_finite": bool(np.isfinite(model.get_latent_representation()).all()),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
