"""Fusion x prior grid on the SNARE-seq mosaic: scib total and 1 % label transfer, one run.

SNARE-seq mouse cortex split into 4 paired (RNA+ATAC), 4 RNA-only and 4 ATAC-only samples (as
``--task mosaic``). For every fusion (attention, poe, moe, mopoe) and prior (normal,
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
  ``--task mosaic``. The models saw 1 % coarse labels, so bio conservation is not blind;
- training time and cells/s.

Writes ``snareseq_fusion_prior<tag>.md`` / ``.csv`` (rewritten after every configuration, so a
partial run keeps its rows) and every scib metric to ``snareseq_fusion_prior<tag>_all_metrics.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from _data import sample_groups, snareseq_mosaic, unintegrated_pca
from _metrics import scib_scores
from _runner import scib_columns, seeds, settings_header, train, write_results
from sklearn.metrics import balanced_accuracy_score

import mosaicvi
from mosaicvi.metrics import knn_label_transfer

EPOCHS = 30
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


def add_arguments(parser) -> None:
    parser.add_argument("--fusions", nargs="+", default=["attention", "poe", "moe", "mopoe"])
    parser.add_argument("--priors", nargs="+", default=["normal", "mixture"])
    parser.add_argument("--label-key", default="cell_type_coarse")
    parser.add_argument("--label-fraction", type=float, default=0.01)
    parser.add_argument("--labelled-batch", default="09A")
    parser.add_argument("--min-per-class", type=int, default=5)
    parser.add_argument("--classification-weight", type=float, default=None)
    parser.add_argument("--skip-scib", action="store_true")


def label_some_cells(mosaic, layout, args, seed) -> tuple[np.ndarray, dict]:
    """Hide all but the chosen labels (``obs["partial_labels"]``); the labelled cells and groups.

    Groups: masks of the query cells (all samples but the labelled one) overall and in paired,
    RNA-only and ATAC-only samples.
    """
    obs = mosaic.obs
    truth = obs[args.label_key].astype(str).to_numpy()
    labelled = choose_labelled_cells(
        obs[args.label_key].astype(str),
        obs["batch"].astype(str),
        args.labelled_batch,
        args.label_fraction,
        args.min_per_class,
        seed,
    )
    partial = np.full(mosaic.n_obs, UNLABELLED, dtype=object)
    partial[labelled] = truth[labelled]
    obs["partial_labels"] = pd.Categorical(partial)
    query = obs["batch"].astype(str).to_numpy() != args.labelled_batch
    groups = {"all": query}
    groups.update({k: query & v for k, v in sample_groups(mosaic, layout).items()})
    return labelled, groups


def run(args) -> None:
    mosaic, _, layout = snareseq_mosaic(args)
    truth = mosaic.obs[args.label_key].astype(str).to_numpy()
    extra = {}
    if args.classification_weight is not None:
        extra["classification_weight"] = args.classification_weight
    rows, latents = [], {}
    for seed in seeds(args):
        labelled, groups = label_some_cells(mosaic, layout, args, seed)
        query = groups["all"]
        print(f"{len(labelled)} labelled cells from {args.labelled_batch}; query {query.sum()}")
        mosaicvi.MosaicVI.setup_mudata(
            mosaic, batch_key="batch", labels_key="partial_labels", unlabeled_category=UNLABELLED
        )
        for fusion in args.fusions:
            for prior in args.priors:
                model = mosaicvi.MosaicVI(mosaic, fusion=fusion, prior=prior, **extra)
                timing = train(model, args)
                z = latents[f"{fusion} / {prior} / {seed}"] = model.get_latent_representation()
                predicted = model.predict().astype(str).to_numpy()
                row = {"fusion": fusion, "prior": prior, "seed": seed}
                row.update(transfer_scores(truth, predicted, groups))
                _, row["kNN bACC all"] = knn_label_transfer(
                    z[labelled], truth[labelled], z[query], truth[query]
                )
                # The same vote from every cell of the labelled sample: is the latent or the
                # number of labels the limit?
                _, row["kNN bACC all (whole sample)"] = knn_label_transfer(
                    z[~query], truth[~query], z[query], truth[query]
                )
                rows.append({**row, "finite": bool(np.isfinite(z).all()), **timing})
                print(rows[-1], flush=True)
                write_table(rows, args, mosaic)
    if not args.skip_scib:
        embeddings = {"Unintegrated": unintegrated_pca(mosaic, seed=args.seeds[0]), **latents}
        scores = scib_scores(mosaic.obs, embeddings, "batch", "cell_type", n_jobs=args.n_jobs)
        scores.to_csv(args.out / f"snareseq_fusion_prior{args.tag}_all_metrics.csv")
        for row in rows:
            row.update(scib_columns(scores, f"{row['fusion']} / {row['prior']} / {row['seed']}"))
        write_table(rows, args, mosaic, scores.loc["Unintegrated", "Total"])


def write_table(rows: list[dict], args, mosaic, unintegrated: float | None = None) -> None:
    """Merge the rows so far into the result table (see :func:`_runner.write_results`)."""
    header = settings_header(
        args,
        f"SNARE-seq mosaic (4 paired / 4 RNA-only / 4 ATAC-only samples, {mosaic.n_obs} cells), "
        f"semi-supervised: {args.label_fraction:.0%} of the cells labelled ({args.label_key}), "
        f"all from {args.labelled_batch}; label transfer on the other samples"
        + ("" if unintegrated is None else f"; unintegrated PCA scib total {unintegrated:.3f}"),
    )
    write_results(rows, args, "snareseq_fusion_prior", ["fusion", "prior", "seed"], header)
