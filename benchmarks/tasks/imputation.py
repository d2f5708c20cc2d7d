"""Cross-modal imputation on the SNARE-seq mosaic, MosaicVI vs MULTIVI in one run, plus DE.

SNARE-seq mouse cortex split into 4 paired, 4 RNA-only and 4 ATAC-only samples (as
``--task mosaic``). Both models train for the same epochs and batch size; then

- the ATAC of the RNA-only cells (hidden from training, kept in the paired data) is imputed and
  scored by AUROC over all cells x peaks and the mean per-peak Pearson correlation;
- the RNA of the ATAC-only cells is imputed and scored by Pearson correlation of log-normalised
  values (mean per cell and mean per gene);

next to a reference that predicts every cell as the average measured profile (no cell
information). Both models decode from the posterior mean of ``z`` with their default batch
handling. Every MosaicVI model also gets a row ``<name>, ATAC library_size='cell'``: its ATAC
decoded at the library each RNA-only cell's RNA library predicts
(``get_normalized_expression(library_size="cell")``; RNA columns empty), and the reference a row
``Average profile, ATAC at RNA-predicted depth``: the average profile shifted on the logit scale
by ``log(predicted / median open peaks)``, the prediction a line of log open peaks on log RNA
counts fitted on the paired cells (the same depth information, without the model). Finally ``MosaicVI.differential_features`` ranks genes per coarse cell type
(one-vs-rest) and the top 10 up-regulated genes of each are listed.

``--extra-runs`` adds MosaicVI rows with other settings (e.g. ``closed_feature_fraction``).

Writes ``snareseq_imputation<tag>.md`` / ``.csv`` and, unless ``--skip-de``,
``snareseq_imputation<tag>_top_genes.md`` / ``.csv`` and the full table
``snareseq_imputation<tag>_de_rna.csv.gz`` (seed: the first of ``--seeds``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from _data import hidden_truth, snareseq_mosaic
from _imputation_metrics import accessibility_scores, expression_scores
from _models import train_mosaicvi_runs, train_multivi
from _runner import seeds, settings_header, write_results

EPOCHS = 30


def add_arguments(parser) -> None:
    parser.add_argument("--skip-multivi", action="store_true")
    parser.add_argument("--skip-de", action="store_true", help="no differential features")
    parser.add_argument("--de-samples", type=int, default=5000)


def average_profiles(mosaic) -> dict[str, np.ndarray]:
    """Reference predictions: each peak's open fraction and each gene's mean proportion."""
    atac = sp.csr_matrix(mosaic["atac"].X)
    rna = sp.csr_matrix(mosaic["rna"].X, dtype=np.float64)
    library = np.asarray(rna.sum(1)).ravel()
    proportions = rna.multiply(1.0 / np.maximum(library, 1.0)[:, None])
    return {
        "atac": np.asarray((atac > 0).mean(0)).ravel(),
        "rna": np.asarray(proportions.mean(0)).ravel(),
    }


def top_genes(de: pd.DataFrame, fdr_column: str, n: int = 10) -> pd.DataFrame:
    """Top ``n`` genes higher in each group (``lfc_mean > 0``), by proba_de then lfc_mean.

    Listed whether or not they pass the FDR target; ``n DE up`` counts those that do.
    """
    rows = []
    for group, block in de.groupby("group1", sort=False):
        up = block[block["lfc_mean"] > 0]
        top = up.sort_values(["proba_de", "lfc_mean"], ascending=False).head(n)
        rows.append(
            {
                "cell type": group,
                "n DE up": int(up[fdr_column].sum()),
                f"top {n} genes (lfc_mean, proba_de)": ", ".join(
                    f"{gene} ({lfc:.1f}, {p:.2f})"
                    for gene, lfc, p in zip(
                        top.index, top["lfc_mean"], top["proba_de"], strict=True
                    )
                ),
            }
        )
    return pd.DataFrame(rows).set_index("cell type")


def imputations(mosaic, cells, args) -> tuple[dict, dict, object]:
    """``{method: (ATAC of RNA-only cells, RNA of ATAC-only cells)}``, timings, default model."""
    models = train_mosaicvi_runs(mosaic, args, labels_key="cell_type")
    imputed = {}
    for name, (m, _) in models.items():
        imputed[name] = (
            m.get_normalized_expression(
                indices=cells["rna_only"], modality="atac", use_z_mean=True, return_numpy=True
            ),
            m.get_normalized_expression(
                indices=cells["atac_only"], modality="rna", use_z_mean=True, return_numpy=True
            ),
        )
        imputed[f"{name}, ATAC library_size='cell'"] = (
            m.get_normalized_expression(
                indices=cells["rna_only"],
                modality="atac",
                use_z_mean=True,
                return_numpy=True,
                library_size="cell",
            ),
            None,
        )
    timings = {name: timing for name, (_, timing) in models.items()}
    if not args.skip_multivi:
        multivi, padded, timings["MULTIVI"] = train_multivi(mosaic, args)
        imputed["MULTIVI"] = (
            multivi.get_normalized_accessibility(
                padded, indices=cells["rna_only"], use_z_mean=True, return_numpy=True
            ),
            multivi.get_normalized_expression(
                padded, indices=cells["atac_only"], use_z_mean=True, return_numpy=True
            ),
        )
    average = average_profiles(mosaic)
    imputed["Average profile"] = (
        np.broadcast_to(average["atac"], (len(cells["rna_only"]), len(average["atac"]))),
        np.broadcast_to(average["rna"], (len(cells["atac_only"]), len(average["rna"]))),
    )
    imputed["Average profile, ATAC at RNA-predicted depth"] = (
        depth_shifted(average["atac"], mosaic, cells["rna_only"]),
        None,
    )
    return imputed, timings, models["MosaicVI"][0]


def depth_shifted(profile: np.ndarray, mosaic, rows: np.ndarray) -> np.ndarray:
    """``profile`` (open fractions) for the cells ``rows`` at the depth their RNA predicts.

    A line of log open peaks on log RNA counts, fitted on the cells with both; each cell's
    logits move by ``log(predicted / median open peaks)`` (the Bernoulli decoders' offset).
    """
    names = mosaic.obs_names
    rna, atac = mosaic["rna"], mosaic["atac"]
    both = rna.obs_names.intersection(atac.obs_names)
    rna_total = np.log(np.maximum(np.asarray(rna[both].X.sum(1)).ravel(), 1.0))
    open_peaks = np.diff(sp.csr_matrix(atac.X).indptr)
    slope, intercept = np.polyfit(
        rna_total, np.log(np.maximum(open_peaks[atac.obs_names.get_indexer(both)], 1.0)), 1
    )
    cell_total = np.asarray(rna[names[rows]].X.sum(1)).ravel()
    shift = intercept + slope * np.log(np.maximum(cell_total, 1.0)) - np.log(np.median(open_peaks))
    p = np.clip(profile, 1e-7, 1 - 1e-7)
    return 1.0 / (1.0 + np.exp(-(np.log(p) - np.log1p(-p) + shift[:, None])))


def write_top_genes(model, args) -> None:
    """Differential features per coarse cell type and the top 10 up-regulated genes of each."""
    de = model.differential_features(
        "cell_type_coarse", "rna", n_samples=args.de_samples, key_added="rank_features_mosaicvi"
    )
    de.to_csv(args.out / f"snareseq_imputation{args.tag}_de_rna.csv.gz")
    genes = top_genes(de, "is_de_fdr_0.05").reset_index()
    header = settings_header(
        args,
        "Top 10 up-regulated genes per coarse cell type, MosaicVI `differential_features` "
        "(one-vs-rest, change mode, batch-corrected over the RNA batches, FDR target 0.05, "
        f"{args.de_samples} samples per group, first seed); n DE up: genes higher in the group "
        "called at the FDR target",
    )
    write_results(genes, args, "snareseq_imputation_top_genes", ["cell type"], header)


def run(args) -> None:
    mosaic, paired, layout = snareseq_mosaic(args)
    cells, truth = hidden_truth(mosaic, paired, layout)
    print(
        f"{len(cells['rna_only'])} RNA-only cells (ATAC hidden), {len(cells['atac_only'])} ATAC-only (RNA hidden)"
    )
    rows = []
    for seed in seeds(args):
        imputed, timings, model = imputations(mosaic, cells, args)
        for method, (atac, rna) in imputed.items():
            atac = np.asarray(atac.toarray() if sp.issparse(atac) else atac, dtype=np.float32)
            rna_scores = {} if rna is None else expression_scores(np.asarray(rna), truth["rna"])
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    **accessibility_scores(atac, truth["atac"]),
                    **rna_scores,
                    "train time (s)": timings.get(method, {}).get("train time (s)", np.nan),
                }
            )
            print(rows[-1], flush=True)
        if seed == args.seeds[0] and not args.skip_de:
            write_top_genes(model, args)
    header = settings_header(
        args,
        f"SNARE-seq mosaic imputation (4 paired / 4 RNA-only / 4 ATAC-only samples; ATAC of "
        f"{len(cells['rna_only'])} RNA-only cells, RNA of {len(cells['atac_only'])} ATAC-only "
        "cells), decoded from the posterior mean",
    )
    write_results(rows, args, "snareseq_imputation", ["method", "seed"], header)
