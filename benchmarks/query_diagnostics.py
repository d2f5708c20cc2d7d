"""What the query fit does to label transfer: variants of the ``query`` task's fit, per seed.

Trains the ``query`` task's reference (paired 09A-09F with ``cell_type_coarse``,
``encode_batch=True``, 30 epochs, batch size 128, no early stopping) once per seed, then scores
``predict()`` on the RNA-only and ATAC-only query samples for: 0 query epochs, the default query
fit, the fit without the batch adversary (``adversarial_strength=0``) and a fit three times as
long; each also with a 15-NN vote of the reference labels in the latent space instead of
``predict``. Prints one record per variant and writes two CSVs to ``--out``: accuracy and
balanced accuracy (pooled, per modality set), and the recall of every class per modality set.

Usage (one seed per process; the reference is trained alone, so its initialisation differs
from the ``query`` task's row of the same seed, which trains an ``encode_batch=False`` reference
first)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/query_diagnostics.py --seed 0 --out /tmp/q
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score
from sklearn.neighbors import KNeighborsClassifier

sys.path.insert(0, str(Path(__file__).parent))

from _runner import quiet, seeds
from tasks.query import LABEL, UNKNOWN, split

import mosaicvi

FIT = {"batch_size": 128, "enable_progress_bar": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("."))
    cli = parser.parse_args()
    quiet()
    args = argparse.Namespace(max_cells=None, seeds=[cli.seed], epochs=cli.epochs, batch_size=128)
    reference, query, _, groups = split(args)
    truth = query.obs[LABEL].astype(str).to_numpy()
    batch = query.obs["batch"].astype(str)
    sets = {
        "pooled": np.ones(len(truth), bool),
        "RNA-only": batch.isin(groups["rna"]).to_numpy(),
        "ATAC-only": batch.isin(groups["atac"]).to_numpy(),
    }
    query = query.copy()
    for table in [query.obs, *(m.obs for m in query.mod.values())]:
        table.drop(columns=[c for c in table.columns if "cell_type" in c], inplace=True)
    reference_labels = reference.obs[LABEL].astype(str).to_numpy()
    classes = sorted(set(truth))
    rows, recalls = [], []

    def score(name: str, seed: int, predicted: np.ndarray, extra: dict | None = None) -> None:
        row = {"variant": name, "seed": seed}
        for s, cells in sets.items():
            row[f"acc {s}"] = accuracy_score(truth[cells], predicted[cells])
            row[f"bal acc {s}"] = balanced_accuracy_score(truth[cells], predicted[cells])
        rows.append({**row, **(extra or {})})
        print(rows[-1], flush=True)
        for s in ("RNA-only", "ATAC-only"):
            cells = sets[s]
            recall = recall_score(
                truth[cells], predicted[cells], labels=classes, average=None, zero_division=0
            )
            recalls.append(
                {
                    "variant": name,
                    "seed": seed,
                    "set": s,
                    **dict(zip(classes, recall, strict=True)),
                }
            )

    for seed in seeds(args):
        mosaicvi.MosaicVI.setup_mudata(
            reference, batch_key="batch", labels_key="label", unlabeled_category=UNKNOWN
        )
        model = mosaicvi.MosaicVI(reference, encode_batch=True)
        start = time.perf_counter()
        model.train(max_epochs=cli.epochs, early_stopping=False, **FIT)
        reference_time = time.perf_counter() - start
        z_reference = model.get_latent_representation()
        knn = KNeighborsClassifier(15).fit(z_reference, reference_labels)
        default_epochs = None
        variants = [
            ("default", {}),
            ("no adversary (adversarial_strength=0)", {"adversarial_strength": 0.0}),
            ("3x epochs", None),
        ]
        for name, kwargs in variants:
            query_model = mosaicvi.MosaicVI.load_query_data(query.copy(), model)
            if default_epochs is None:
                score("0 query epochs", seed, query_model.predict().to_numpy().astype(str))
                z = query_model.get_latent_representation()
                score("0 query epochs, 15-NN on latent", seed, knn.predict(z))
            if kwargs is None:
                kwargs = {"max_epochs": 3 * default_epochs}
            start = time.perf_counter()
            query_model.train(**FIT, **kwargs)
            fit_time = time.perf_counter() - start
            epochs = len(query_model.history["elbo_train"])
            default_epochs = default_epochs or epochs
            extra = {"query epochs": epochs, "fit / reference time": fit_time / reference_time}
            score(name, seed, query_model.predict().to_numpy().astype(str), extra)
            z = query_model.get_latent_representation()
            score(f"{name}, 15-NN on latent", seed, knn.predict(z), extra)
    cli.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(cli.out / f"query_diagnostics_seed{cli.seed}.csv", index=False)
    pd.DataFrame(recalls).to_csv(cli.out / f"query_recall_seed{cli.seed}.csv", index=False)


if __name__ == "__main__":
    main()
