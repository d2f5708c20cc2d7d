"""Importance-weighted training (issue 9, item 4) on the SNARE-seq mosaic: ``fusion="moe"``, K=1 vs K.

SNARE-seq mouse cortex split into 4 paired (RNA+ATAC), 4 RNA-only and 4 ATAC-only samples (as
``snareseq_mosaic.py``). For each ``K`` in ``--importance-samples`` (1 = the ELBO), a MosaicVI with
``fusion="moe"`` is trained with ``train(n_importance_samples=K)`` (DReG gradients), same seed,
epochs and batch size, and scored with the metrics of ``snareseq_family_options.py`` (scib total,
imputation, coherence: its functions are imported, so the rows can be merged into its table; row
``moe`` is K=1, ``moe_iw`` the others) plus:

- ``marginal LL (val)``: :meth:`~mosaicvi.MosaicVI.get_marginal_ll` (``--mc-samples`` draws per
  expert) averaged over the validation cells (never trained on), overall and per kind of sample
  (paired, RNA-only, ATAC-only); ``ELBO (val)`` on the same cells and their difference. Higher is
  better (nats per cell; the same cells and proposal family for every row).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/snareseq_importance_weighted.py --epochs 15

Writes ``benchmarks/results/<name>.csv`` and ``.md`` after every row (each row replaces an earlier
one of the same ``row`` name) and saves each trained model under ``results/<name>_models/``.
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
from _metrics import scib_scores
from snareseq_family_options import (
    LABELS,
    cached_unintegrated_pca,
    coherence_scores,
    imputation_scores,
    mosaic_with_hidden_truth,
)

import mosaicvi


def likelihood_scores(
    model, groups: dict[str, np.ndarray], n_mc_samples: int, seed: int
) -> dict[str, float]:
    """Mean marginal LL and ELBO of the validation cells, overall and per group of samples."""
    cells = np.sort(np.asarray(model.validation_indices))
    scvi.settings.seed = seed
    log_px = model.get_marginal_ll(indices=cells, n_mc_samples=n_mc_samples)
    elbo = model.get_elbo(indices=cells, return_mean=False).numpy()
    scores = {
        "marginal LL (val)": float(log_px.mean()),
        "ELBO (val)": float(elbo.mean()),
        "LL - ELBO (val)": float((log_px - elbo).mean()),
    }
    for name, mask in groups.items():
        scores[f"marginal LL (val, {name})"] = float(log_px[mask[cells]].mean())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--importance-samples", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mc-samples", type=int, default=50)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--skip-coherence", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="snareseq_importance_weighted")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / f"{args.name}.csv"

    mosaic, layout, cells, truth = mosaic_with_hidden_truth()
    batch = mosaic.obs["batch"].astype(str).to_numpy()
    both = set(layout["rna"]) & set(layout["atac"])
    groups = {
        "paired": np.isin(batch, sorted(both)),
        "RNA-only": np.isin(batch, sorted(set(layout["rna"]) - both)),
        "ATAC-only": np.isin(batch, sorted(set(layout["atac"]) - both)),
    }
    paired_cells = np.flatnonzero(groups["paired"])
    pca = cached_unintegrated_pca(mosaic, args.out, args.seed)
    mosaicvi.MosaicVI.setup_mudata(mosaic, batch_key="batch", labels_key=LABELS)
    header = (
        f"SNARE-seq mosaic (4 paired / 4 RNA-only / 4 ATAC-only samples, {mosaic.n_obs} cells), "
        f'fusion="moe", DReG, {args.epochs} epochs, batch size {args.batch_size}, seed '
        f"{args.seed}, marginal LL with {args.mc_samples} draws per expert; "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads "
        f"(CPU shared with other work: times indicative only), scvi-tools {scvi.__version__}"
    )

    for k in args.importance_samples:
        row = "moe" if k == 1 else "moe_iw"
        scvi.settings.seed = args.seed
        model = mosaicvi.MosaicVI(mosaic, fusion="moe")
        start = time.perf_counter()
        model.train(
            max_epochs=args.epochs,
            batch_size=args.batch_size,
            early_stopping=False,
            enable_progress_bar=False,
            n_importance_samples=k,
        )
        seconds = time.perf_counter() - start
        model.save(args.out / f"{args.name}_models" / f"k{k}", overwrite=True)
        z = model.get_latent_representation()
        result = {
            "row": row,
            "option": f'fusion="moe", n_importance_samples={k}',
            "epochs": args.epochs,
            "finite": bool(np.isfinite(z).all()),
        }
        scores = scib_scores(
            mosaic.obs, {"Unintegrated": pca, row: z}, "batch", LABELS, n_jobs=args.n_jobs
        )
        result["scib total"] = scores.loc[row, "Total"]
        result["scib bio"] = scores.loc[row, "Bio conservation"]
        result["scib batch"] = scores.loc[row, "Batch correction"]
        result.update(imputation_scores(model, mosaic, truth, cells))
        result.update(likelihood_scores(model, groups, args.mc_samples, args.seed))
        if not args.skip_coherence:
            result.update(coherence_scores(model, paired_cells, args.seed))
        result["train time (s)"] = seconds
        result["s per epoch"] = seconds / args.epochs
        result["unintegrated scib total"] = scores.loc["Unintegrated", "Total"]
        print(result, flush=True)
        frame = pd.DataFrame([result]).set_index("row")
        if csv.exists():
            earlier = pd.read_csv(csv, index_col="row")
            frame = pd.concat([earlier.drop(index=row, errors="ignore"), frame])
        frame.to_csv(csv)
        table = frame.round(3).T
        csv.with_suffix(".md").write_text(
            header + "\n\n" + table.to_markdown(floatfmt=".3f") + "\n"
        )
        print(table.to_markdown(floatfmt=".3f"), flush=True)


if __name__ == "__main__":
    main()
