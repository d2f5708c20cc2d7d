"""Fusion x prior grid on the SNARE-seq mosaic: scib total and 1 % label transfer, one run.

SNARE-seq mouse cortex split into 4 paired (RNA+ATAC), 4 RNA-only and 4 ATAC-only samples (as
``snareseq_mosaic.py``). For every fusion (attention, poe, moe, mopoe) and prior (normal,
mixture), a MosaicVI is trained semi-supervised with 1 % of all cells labelled
(``cell_type_coarse``, 15 classes), every labelled cell taken from ONE paired sample (09A; at least
5 cells per class where the sample has them, the rest drawn at random); the other samples' labels
are hidden. Reported per configuration:

- label transfer: ``model.predict()`` on every cell of the other 11 samples, balanced accuracy
  and accuracy overall and for the paired, RNA-only and ATAC-only samples separately; and, as a
  classifier-free reference, a 15-nearest-neighbour vote in the same latent space from the
  labelled cells, and one from every cell of the labelled sample;
- integration: scib-metrics' Benchmarker on the latent (batch = sample, label = ``cell_type``, 23
  types, raw scores, total = 0.6 bio + 0.4 batch), next to the unintegrated PCA baseline of
  ``snareseq_mosaic.py``. The models saw 1 % coarse labels, so bio conservation is not blind;
- training time and cells/s.

Usage::

    python benchmarks/snareseq_fusion_prior.py --epochs 30

Prints one markdown table (rewritten after every configuration, so a partial run keeps its
rows) to ``benchmarks/results/snareseq_fusion_prior.md`` (and ``.csv``).
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch
from _metrics import knn_label_transfer, scib_scores
from _mosaic_data import snareseq_mosaic, zero_padded
from sklearn.metrics import balanced_accuracy_score
from snareseq_mosaic import unintegrated_pca

import mosaicvi

UNLABELLED = "unlabelled"


def choose_labelled_cells(
    labels: pd.Series,
    batches: pd.Series,
    batch: str,
    fraction: float,
    min_per_class: int,
    seed: int,
) -> np.ndarray:
    """Positions of ``fraction`` of all cells, all from ``batch``: every class present there gets
    ``min_per_class`` cells (or all it has), the rest is drawn at random from the batch."""
    rng = np.random.default_rng(seed)
    n_total = int(np.floor(fraction * len(labels)))
    in_batch = np.flatnonzero((batches == batch).to_numpy())
    if n_total > len(in_batch):
        raise ValueError(f"Batch {batch} has {len(in_batch)} cells, fewer than {n_total}.")
    chosen: list[int] = []
    for _, group in pd.Series(in_batch).groupby(labels.to_numpy()[in_batch]):
        take = min(min_per_class, len(group))
        chosen.extend(rng.choice(group.to_numpy(), size=take, replace=False))
    rest = np.setdiff1d(in_batch, chosen)
    n_rest = max(0, n_total - len(chosen))
    chosen.extend(rng.choice(rest, size=n_rest, replace=False))
    return np.sort(np.asarray(chosen))


def transfer_scores(
    truth: np.ndarray, predicted: np.ndarray, groups: dict[str, np.ndarray]
) -> dict[str, float]:
    """Balanced accuracy and accuracy on every group of query cells."""
    scores = {}
    for name, mask in groups.items():
        scores[f"bACC {name}"] = balanced_accuracy_score(truth[mask], predicted[mask])
        scores[f"acc {name}"] = float(np.mean(truth[mask] == predicted[mask]))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fusions", nargs="+", default=["attention", "poe", "moe", "mopoe"])
    parser.add_argument("--priors", nargs="+", default=["normal", "mixture"])
    parser.add_argument("--label-key", default="cell_type_coarse")
    parser.add_argument("--label-fraction", type=float, default=0.01)
    parser.add_argument("--labelled-batch", default="09A")
    parser.add_argument("--min-per-class", type=int, default=5)
    parser.add_argument("--classification-weight", type=float, default=None)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--skip-scib", action="store_true")
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="train nothing: score the latents (and rows) a previous run saved",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="snareseq_fusion_prior")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)

    mosaic, layout = snareseq_mosaic()
    obs = mosaic.obs
    truth = obs[args.label_key].astype(str).to_numpy()
    labelled = choose_labelled_cells(
        obs[args.label_key].astype(str),
        obs["batch"].astype(str),
        args.labelled_batch,
        args.label_fraction,
        args.min_per_class,
        args.seed,
    )
    partial = np.full(mosaic.n_obs, UNLABELLED, dtype=object)
    partial[labelled] = truth[labelled]
    obs["partial_labels"] = pd.Categorical(partial)
    batch = obs["batch"].astype(str).to_numpy()
    query = batch != args.labelled_batch
    paired = set(layout["rna"]) & set(layout["atac"])
    groups = {
        "all": query,
        "paired": query & np.isin(batch, sorted(paired)),
        "RNA-only": np.isin(batch, sorted(set(layout["rna"]) - paired)),
        "ATAC-only": np.isin(batch, sorted(set(layout["atac"]) - paired)),
    }
    n_classes = len(np.unique(truth[labelled]))
    print(
        f"SNARE-seq mosaic: {mosaic.n_obs} cells; {len(labelled)} labelled "
        f"({100 * len(labelled) / mosaic.n_obs:.2f} %, {n_classes} classes) all from "
        f"{args.labelled_batch}; query: {int(query.sum())} cells of the other samples"
    )
    mosaicvi.MosaicVI.setup_mudata(
        mosaic,
        batch_key="batch",
        labels_key="partial_labels",
        unlabeled_category=UNLABELLED,
    )
    extra = {}
    if args.classification_weight is not None:
        extra["classification_weight"] = args.classification_weight

    header = (
        f"SNARE-seq mosaic (4 paired / 4 RNA-only / 4 ATAC-only samples, {mosaic.n_obs} cells), "
        f"{args.epochs} epochs, batch size {args.batch_size}, seed {args.seed}; "
        f"{len(labelled)} labelled cells ({args.label_key}, {n_classes} classes) from "
        f"{args.labelled_batch}; {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, scvi-tools {scvi.__version__}, "
        f"mosaicvi {mosaicvi.__version__}"
    )
    latent_dir = args.out / f"{args.name}_latents"
    latent_dir.mkdir(exist_ok=True)
    rows, latents = [], {}
    if args.score_only:
        table = pd.read_csv(args.out / f"{args.name}.csv").set_index(["fusion", "prior"])
        table = table[[c for c in table.columns if not c.startswith("scib")]]
        for fusion, prior in table.index:
            latents[f"{fusion} / {prior}"] = np.load(latent_dir / f"{fusion}_{prior}.npy")
    for fusion in [] if args.score_only else args.fusions:
        for prior in args.priors:
            name = f"{fusion} / {prior}"
            scvi.settings.seed = args.seed
            model = mosaicvi.MosaicVI(mosaic, fusion=fusion, prior=prior, **extra)
            start = time.perf_counter()
            model.train(max_epochs=args.epochs, batch_size=args.batch_size, early_stopping=False)
            seconds = time.perf_counter() - start
            z = model.get_latent_representation()
            latents[name] = z
            np.save(latent_dir / f"{fusion}_{prior}.npy", z)
            predicted = model.predict().astype(str).to_numpy()
            row = {"fusion": fusion, "prior": prior}
            row.update(transfer_scores(truth, predicted, groups))
            _, row["kNN bACC all"] = knn_label_transfer(
                z[labelled], truth[labelled], z[query], truth[query]
            )
            # Reference: the same vote from every cell of the labelled sample (is the latent or
            # the number of labels the limit?).
            reference = ~query
            _, row["kNN bACC all (whole sample)"] = knn_label_transfer(
                z[reference], truth[reference], z[query], truth[query]
            )
            row["finite"] = bool(np.isfinite(z).all())
            row["train time (s)"] = seconds
            row["training cells/s"] = args.epochs * len(model.train_indices) / seconds
            rows.append(row)
            table = pd.DataFrame(rows).set_index(["fusion", "prior"])
            print(f"{name}: {row}", flush=True)
            (args.out / f"{args.name}.md").write_text(
                header
                + "\n\n"
                + table.reset_index().to_markdown(index=False, floatfmt=".3f")
                + "\n"
            )
            table.to_csv(args.out / f"{args.name}.csv")

    if not args.skip_scib:
        embeddings = {"Unintegrated": unintegrated_pca(zero_padded(mosaic), seed=args.seed)}
        embeddings.update(latents)
        scores = scib_scores(obs, embeddings, "batch", "cell_type", n_jobs=args.n_jobs)
        scores.to_csv(args.out / f"{args.name}_all_metrics.csv")
        for column, key in (
            ("scib bio", "Bio conservation"),
            ("scib batch", "Batch correction"),
            ("scib total", "Total"),
        ):
            table[column] = [scores.loc[f"{f} / {p}", key] for f, p in table.index]
        unintegrated = scores.loc["Unintegrated", "Total"]
        header += f"; unintegrated PCA scib total {unintegrated:.3f}"
    columns = [c for c in ("scib total", "scib bio", "scib batch") if c in table] + [
        c for c in table.columns if not c.startswith("scib")
    ]
    table = table[columns]
    markdown = (
        header + "\n\n" + table.reset_index().to_markdown(index=False, floatfmt=".3f") + "\n"
    )
    print(markdown)
    (args.out / f"{args.name}.md").write_text(markdown)
    table.to_csv(args.out / f"{args.name}.csv")


if __name__ == "__main__":
    main()
