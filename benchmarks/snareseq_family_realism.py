"""Output discriminator and modality-specific priors vs the default: realism of imputed profiles.

Companion of ``snareseq_family_options.py`` (issue 9, items 1 and 2): trains its rows
``default``, ``output_discriminator`` and ``prior_modality`` (any row of the family table with
``--rows``) on the SNARE-seq mosaic (4 paired /
4 RNA-only / 4 ATAC-only samples; unsupervised, same seed, epochs and batch size) and reports the
same columns as that script (scib total, imputation, coherence: its functions are imported), plus
:func:`_realism_metrics.realism_scores`: the validation reconstruction NLL per modality and the
realism of the imputed hidden modality (held-out real-vs-imputed classifier AUC on draws from the
decoded distribution, per-feature mean correlation and log2 variance ratio).

Each finished row is merged into ``benchmarks/results/<name>.csv`` (``row`` index, as the family
table) and ``<name>.md`` is rewritten, so rows can be run one at a time.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/snareseq_family_realism.py --epochs 15
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
from _realism_metrics import realism_scores
from snareseq_family_options import (
    LABELS,
    ROWS,
    cached_unintegrated_pca,
    coherence_scores,
    imputation_scores,
    mosaic_with_hidden_truth,
    paired_cell_indices,
    row_settings,
)

import mosaicvi

DEFAULT_ROWS = ["default", "output_discriminator", "prior_modality"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, choices=list(ROWS))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--importance-samples", type=int, default=3, help="K of the moe_iw row")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="snareseq_family_realism")
    parser.add_argument("--save-models", type=Path, default=None, help="save each model here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / f"{args.name}.csv"

    mosaic, layout, cells, truth = mosaic_with_hidden_truth()
    paired_cells = paired_cell_indices(mosaic, layout)
    pca = cached_unintegrated_pca(mosaic, args.out, args.seed)
    mosaicvi.MosaicVI.setup_mudata(mosaic, batch_key="batch", labels_key=LABELS)
    header = (
        f"SNARE-seq mosaic (4 paired / 4 RNA-only / 4 ATAC-only samples, {mosaic.n_obs} cells), "
        f"{args.epochs} epochs, batch size {args.batch_size}, seed {args.seed}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads "
        f"(CPU shared with other work: times indicative only), scvi-tools {scvi.__version__}"
    )
    for row in args.rows:
        description, model_kwargs, train_kwargs = row_settings(row, args.importance_samples)
        scvi.settings.seed = args.seed
        start = time.perf_counter()
        model = mosaicvi.MosaicVI(mosaic, **model_kwargs)
        model.train(
            max_epochs=args.epochs,
            batch_size=args.batch_size,
            early_stopping=False,
            enable_progress_bar=False,
            **train_kwargs,
        )
        seconds = time.perf_counter() - start
        z = model.get_latent_representation()
        result = {"row": row, "option": description, "epochs": args.epochs}
        result["finite"] = bool(np.isfinite(z).all())
        history = {k: float(v.iloc[-1, 0]) for k, v in model.history.items()}
        result["elbo (val)"] = history.get("elbo_validation", np.nan)
        scores = scib_scores(
            mosaic.obs, {"Unintegrated": pca, row: z}, "batch", LABELS, n_jobs=args.n_jobs
        )
        result["scib total"] = scores.loc[row, "Total"]
        result["scib bio"] = scores.loc[row, "Bio conservation"]
        result["scib batch"] = scores.loc[row, "Batch correction"]
        if args.save_models is not None:
            model.save(args.save_models / row, overwrite=True)
        metrics = {
            "imputation": (imputation_scores, (model, mosaic, truth, cells)),
            "realism": (realism_scores, (model, truth, cells, args.seed)),
            "coherence": (coherence_scores, (model, paired_cells, args.seed)),
        }
        for group, (compute, arguments) in metrics.items():
            try:  # a failing score group keeps the trained row's other scores
                result.update(compute(*arguments))
            except Exception as error:
                print(f"{row}: {group} scores failed: {error!r}", flush=True)
        for key in ("output_discriminator_loss_train", "output_generator_loss_train"):
            if key in history:
                result[key.removesuffix("_train")] = history[key]
        result["train time (s)"] = seconds
        print(result, flush=True)
        frame = pd.DataFrame([result]).set_index("row")
        if csv.exists():
            earlier = pd.read_csv(csv, index_col="row")
            frame = pd.concat([earlier.drop(index=row, errors="ignore"), frame])
        frame.to_csv(csv)
        table = frame.loc[[r for r in ROWS if r in frame.index]]
        csv.with_suffix(".md").write_text(
            header + "\n\n" + table.to_markdown(floatfmt=".3f") + "\n"
        )
        print(table.to_markdown(floatfmt=".3f"), flush=True)


if __name__ == "__main__":
    main()
