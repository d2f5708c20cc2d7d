"""Multimodal-VAE family options (issue 9) against the default on the SNARE-seq mosaic.

SNARE-seq mouse cortex split into 4 paired (RNA+ATAC), 4 RNA-only and 4 ATAC-only samples (as
``snareseq_mosaic.py``). Each row trains one MosaicVI (unsupervised, same seed, epochs and batch
size) with one option changed from the default, and reports:

- integration: scib-metrics' Benchmarker on the latent (batch = sample, label = ``cell_type``,
  23 types, raw scores, total = 0.6 bio + 0.4 batch), the unintegrated PCA of
  ``snareseq_mosaic.py`` as the PCR reference;
- imputation: the hidden ATAC of the RNA-only cells (AUROC over cells x peaks, mean per-peak
  Pearson) and the hidden RNA of the ATAC-only cells (mean per-cell and per-gene Pearson of
  log-normalised values), as ``snareseq_imputation.py``;
- coherence (:mod:`mosaicvi.metrics`, labels ``cell_type``, half the cells held out): latent
  accuracy of the RNA and ATAC views and across them (classifier on RNA-only codes scored on
  ATAC-only codes and back), cross-modal coherence (a classifier of real ATAC labels ATAC imputed
  from RNA alone, and the reverse), and FOSCTTM between the RNA-only and ATAC-only codes of the
  paired cells (0 = every cell's two codes are mutual nearest, 0.5 = random);
- training time (the CPU is shared with other work; times are indicative only).

Rows (``--rows``, default all): ``default``; ``output_discriminator`` (``MosaicVI(...,
output_discriminator=True)``) and ``output_discriminator_w0.001`` (the same with
``output_adversarial_weight=0.001`` instead of the default 0.01); ``prior_modality`` (``prior="modality"``); ``moe`` (``fusion="moe"``,
one importance sample, the baseline of the next row); ``moe_iw`` (``fusion="moe"``,
``train(..., n_importance_samples=K)``, K from ``--importance-samples``). A row whose option the
installed mosaicvi does not accept is skipped with a message. Each finished row is merged into
``benchmarks/results/<name>.csv`` (replacing an earlier result of the same row) and the markdown
table ``<name>.md`` is rewritten from the CSV, so rows can be (re)run one at a time.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/snareseq_family_options.py --epochs 15
    OMP_NUM_THREADS=1 python benchmarks/snareseq_family_options.py --epochs 15 --rows moe_iw
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
from _imputation_metrics import accessibility_scores, expression_scores
from _metrics import foscttm, scib_scores
from _mosaic_data import snareseq_mosaic, zero_padded
from snareseq_imputation import hidden_cells
from snareseq_mosaic import unintegrated_pca

import mosaicvi

#: Row name -> (description, MosaicVI keyword arguments, train keyword arguments).
ROWS = {
    "default": ("default (attention fusion, normal prior)", {}, {}),
    "output_discriminator": ("output_discriminator=True", {"output_discriminator_kwargs": {}}, {}),
    "output_discriminator_w0.001": (
        "output_discriminator=True, output_adversarial_weight=0.001",
        {"output_discriminator_kwargs": {"weight": 0.001}},
        {},
    ),
    "prior_modality": ('prior="modality"', {"prior": "modality"}, {}),
    "moe": ('fusion="moe", K=1', {"fusion": "moe"}, {}),
    "moe_iw": ('fusion="moe", n_importance_samples=K', {"fusion": "moe"}, {}),
}
LABELS = "cell_type"


def row_settings(row: str, importance_samples: int) -> tuple[str, dict, dict]:
    """``(description, model kwargs, train kwargs)`` of a row; ``moe_iw`` takes K from the caller."""
    description, model_kwargs, train_kwargs = ROWS[row]
    if row == "moe_iw":
        train_kwargs = {"n_importance_samples": importance_samples}
        description = description.replace("=K", f"={importance_samples}")
    return description, model_kwargs, train_kwargs


def mosaic_with_hidden_truth():
    """The SNARE-seq mosaic, the cells hiding each modality, and their hidden measured profiles.

    Returns ``(mosaic, layout, cells, truth)``: ``cells["rna_only"]`` / ``cells["atac_only"]`` index
    the mosaic's cells without ATAC / RNA, ``truth["atac"]`` / ``truth["rna"]`` their hidden counts.
    """
    paired = mosaicvi.data.snareseq()
    mosaic, layout = snareseq_mosaic()
    names = mosaic.obs_names
    cells = {
        "rna_only": hidden_cells(mosaic, layout, "rna"),
        "atac_only": hidden_cells(mosaic, layout, "atac"),
    }
    truth = {
        "atac": paired["atac"][names[cells["rna_only"]]].X,
        "rna": paired["rna"][names[cells["atac_only"]]].X,
    }
    return mosaic, layout, cells, truth


def paired_cell_indices(mosaic, layout: dict[str, list[str]]) -> np.ndarray:
    """Indices of the mosaic's cells from samples that kept both RNA and ATAC."""
    both = set(layout["rna"]) & set(layout["atac"])
    return np.flatnonzero(mosaic.obs["batch"].astype(str).isin(both).to_numpy())


def cached_unintegrated_pca(mosaic, out: Path, seed: int) -> np.ndarray:
    """The unintegrated PCA of the mosaic; seed 0's is cached in ``out`` for the family scripts."""
    path = out / "snareseq_family_options_unintegrated_pca.npy"
    if seed == 0 and path.exists():
        return np.load(path)
    pca = unintegrated_pca(zero_padded(mosaic), seed=seed)
    if seed == 0:
        np.save(path, pca)
    return pca


def coherence_scores(model, paired_cells: np.ndarray, seed: int) -> dict[str, float]:
    """Latent accuracy, cross-modal coherence and paired FOSCTTM (see the module docstring)."""
    latent = mosaicvi.metrics.latent_accuracy(model, LABELS, ["rna", "atac"], seed=seed)
    coherence = mosaicvi.metrics.cross_modal_coherence(model, LABELS, ["rna", "atac"], seed=seed)
    z_rna = model.get_latent_representation(indices=paired_cells, modalities=["rna"])
    z_atac = model.get_latent_representation(indices=paired_cells, modalities=["atac"])
    return {
        "latent acc RNA": latent.loc["rna", "rna"],
        "latent acc ATAC": latent.loc["atac", "atac"],
        "latent acc RNA->ATAC": latent.loc["rna", "atac"],
        "latent acc ATAC->RNA": latent.loc["atac", "rna"],
        "coherence RNA->ATAC": coherence.loc["rna", "atac"],
        "coherence ATAC->RNA": coherence.loc["atac", "rna"],
        "real ATAC acc": coherence.loc["real profiles", "atac"],
        "real RNA acc": coherence.loc["real profiles", "rna"],
        "FOSCTTM paired": foscttm(z_rna, z_atac),
    }


def imputation_scores(model, mosaic, truth: dict, cells: dict) -> dict[str, float]:
    """Hidden ATAC of RNA-only cells and hidden RNA of ATAC-only cells, as the imputation script."""
    atac = model.get_normalized_expression(
        indices=cells["rna_only"], modality="atac", use_z_mean=True, return_numpy=True
    )
    rna = model.get_normalized_expression(
        indices=cells["atac_only"], modality="rna", use_z_mean=True, return_numpy=True
    )
    return {
        **accessibility_scores(np.asarray(atac, dtype=np.float32), truth["atac"]),
        **expression_scores(np.asarray(rna), truth["rna"]),
    }


def scib_row(
    obs: pd.DataFrame, pca: np.ndarray, z: np.ndarray, row: str, cache: Path, n_jobs: int
) -> dict[str, float]:
    """scib total / bio / batch of ``z``; the unintegrated PCA (PCR reference) is scored once."""
    embeddings = {"Unintegrated": pca, row: z}
    first = not cache.exists()
    scores = scib_scores(
        obs, embeddings, "batch", LABELS, n_jobs=n_jobs, score_pre_integrated=first
    )
    if first:
        scores.loc[["Unintegrated"]].to_csv(cache)
    return {
        "scib total": scores.loc[row, "Total"],
        "scib bio": scores.loc[row, "Bio conservation"],
        "scib batch": scores.loc[row, "Batch correction"],
    }


def header(args: argparse.Namespace, n_cells: int, unintegrated_csv: Path) -> str:
    text = (
        f"SNARE-seq mosaic (4 paired / 4 RNA-only / 4 ATAC-only samples, {n_cells} cells), "
        f"{args.epochs} epochs, batch size {args.batch_size}, seed {args.seed}, "
        f"{platform.processor() or platform.machine()} (CPU shared with other work; threads per "
        f"row in `torch threads`), scvi-tools {scvi.__version__}"
    )
    if unintegrated_csv.exists():
        total = pd.read_csv(unintegrated_csv, index_col=0).loc["Unintegrated", "Total"]
        text += f"; unintegrated PCA scib total {total:.3f}"
    return text


def write_tables(csv: Path, header: str, include: list[Path]) -> pd.DataFrame:
    """The table of ``csv`` plus the rows of ``include`` CSVs (their shared columns).

    An included row named like one of ours is skipped when it ran for as many epochs, and
    otherwise kept as ``"<row> (<epochs> epochs)"``; ``from`` names the CSV a row came from.
    """
    table = pd.read_csv(csv, index_col="row")
    table["from"] = csv.name
    for path in include:
        if not path.exists():
            print(f"--include: {path} does not exist (yet); its rows are left out", flush=True)
            continue
        other = pd.read_csv(path, index_col="row")
        for row, values in other.iterrows():
            name = row
            if name in table.index:
                if table.loc[name, "epochs"] == values.get("epochs"):
                    continue
                name = f"{row} ({int(values['epochs'])} epochs)"
            kept = values[[c for c in table.columns if c in values.index]]
            table.loc[name] = kept.reindex(table.columns)
            table.loc[name, "from"] = path.name
    base = list(ROWS)
    order = sorted(
        table.index,
        key=lambda r: (base.index(r.split(" (")[0]) if r.split(" (")[0] in base else 99, r),
    )
    table = table.loc[order]
    (csv.with_suffix(".md")).write_text(header + "\n\n" + transposed(table) + "\n")
    return table


def transposed(table: pd.DataFrame) -> str:
    """Markdown with one column per row of ``table`` (options side by side), numbers to 3 places."""
    shown = table.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)
    return shown.T.to_markdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows",
        nargs="*",
        default=list(ROWS),
        choices=list(ROWS),
        help="rows to (re)run; none: only rebuild the table",
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--importance-samples", type=int, default=4)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="snareseq_family_options")
    parser.add_argument("--skip-scib", action="store_true")
    parser.add_argument(
        "--include",
        nargs="*",
        type=Path,
        default=[],
        help="CSVs of the same rows from other scripts (e.g. snareseq_family_realism.csv): "
        "rows this table lacks are shown from there",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / f"{args.name}.csv"

    mosaic, layout, cells, truth = mosaic_with_hidden_truth()
    paired_cells = paired_cell_indices(mosaic, layout)
    unintegrated_csv = args.out / f"{args.name}_unintegrated_scib.csv"
    pca = cached_unintegrated_pca(mosaic, args.out, args.seed)
    mosaicvi.MosaicVI.setup_mudata(mosaic, batch_key="batch", labels_key=LABELS)

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
        if not args.skip_scib:
            result.update(scib_row(mosaic.obs, pca, z, row, unintegrated_csv, args.n_jobs))
        result.update(imputation_scores(model, mosaic, truth, cells))
        result.update(coherence_scores(model, paired_cells, args.seed))
        result["train time (s)"] = seconds
        result["torch threads"] = torch.get_num_threads()
        print(result, flush=True)
        frame = pd.DataFrame([result]).set_index("row")
        if csv.exists():
            earlier = pd.read_csv(csv, index_col="row")
            frame = pd.concat([earlier.drop(index=row, errors="ignore"), frame])
        frame.to_csv(csv)
        table = write_tables(csv, header(args, mosaic.n_obs, unintegrated_csv), args.include)
        print(transposed(table), flush=True)
    if not args.rows and csv.exists():
        table = write_tables(csv, header(args, mosaic.n_obs, unintegrated_csv), args.include)
        print(transposed(table), flush=True)


if __name__ == "__main__":
    main()
