"""Cross-modal imputation on the SNARE-seq mosaic, MosaicVI vs MULTIVI in one run, plus DE.

SNARE-seq mouse cortex split into 4 paired, 4 RNA-only and 4 ATAC-only samples (as
``snareseq_mosaic.py``). Both models train for the same epochs and batch size; then

- the ATAC of the RNA-only cells (hidden from training, kept in the paired data) is imputed and
  scored by AUROC over all cells x peaks and the mean per-peak Pearson correlation;
- the RNA of the ATAC-only cells is imputed and scored by Pearson correlation of log-normalised
  values (mean per cell and mean per gene);

next to a reference that predicts every cell as the average measured profile (no cell
information). Both models decode from the posterior mean of ``z`` with their default batch
handling. Finally ``MosaicVI.differential_features`` ranks genes per coarse cell type
(one-vs-rest) and the top 10 up-regulated genes of each are listed.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/snareseq_imputation.py --epochs 30 --batch-size 128

Writes ``snareseq_imputation.md`` / ``.csv`` and ``snareseq_imputation_top_genes.md`` / ``.csv``
to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import platform
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scvi
import torch
from _imputation_metrics import accessibility_scores, expression_scores
from _mosaic_data import snareseq_mosaic, zero_padded
from _multivi_runner import train_multivi, train_timed

import mosaicvi


def hidden_cells(mosaic, layout: dict[str, list[str]], kept: str) -> np.ndarray:
    """Positions (in ``mosaic.obs``) of the cells whose batch kept only modality ``kept``."""
    other = next(m for m in layout if m != kept)
    only = set(layout[kept]) - set(layout[other])
    return np.flatnonzero(mosaic.obs["batch"].astype(str).isin(only).to_numpy())


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--de-samples", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--skip-multivi", action="store_true")
    parser.add_argument("--skip-de", action="store_true", help="no differential features")
    parser.add_argument(
        "--closed-feature-fractions",
        default="",
        help="comma-separated `closed_feature_fraction` values: one more MosaicVI row each",
    )
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)

    paired = mosaicvi.data.snareseq()
    mosaic, layout = snareseq_mosaic()
    rna_only = hidden_cells(mosaic, layout, "rna")
    atac_only = hidden_cells(mosaic, layout, "atac")
    names = mosaic.obs_names
    true_atac = paired["atac"][names[rna_only]].X
    true_rna = paired["rna"][names[atac_only]].X
    print(f"{len(rna_only)} RNA-only cells (ATAC hidden), {len(atac_only)} ATAC-only (RNA hidden)")

    scvi.settings.seed = args.seed
    mosaicvi.MosaicVI.setup_mudata(mosaic, batch_key="batch", labels_key="cell_type")
    model = mosaicvi.MosaicVI(mosaic)
    timings = {"MosaicVI": train_timed(model, args.epochs, args.batch_size)}
    models = {"MosaicVI": model}
    for fraction in filter(None, args.closed_feature_fractions.split(",")):
        name = f"MosaicVI, closed_feature_fraction={float(fraction):g}"
        scvi.settings.seed = args.seed
        models[name] = mosaicvi.MosaicVI(mosaic, closed_feature_fraction=float(fraction))
        timings[name] = train_timed(models[name], args.epochs, args.batch_size)
    imputed = {
        name: (
            m.get_normalized_expression(
                indices=rna_only, modality="atac", use_z_mean=True, return_numpy=True
            ),
            m.get_normalized_expression(
                indices=atac_only, modality="rna", use_z_mean=True, return_numpy=True
            ),
        )
        for name, m in models.items()
    }
    if not args.skip_multivi:
        padded = zero_padded(mosaic)
        multivi, timings["MULTIVI"] = train_multivi(
            padded, args.epochs, args.batch_size, args.seed
        )
        imputed["MULTIVI"] = (
            multivi.get_normalized_accessibility(
                padded, indices=rna_only, use_z_mean=True, return_numpy=True
            ),
            multivi.get_normalized_expression(
                padded, indices=atac_only, use_z_mean=True, return_numpy=True
            ),
        )
    average = average_profiles(mosaic)
    imputed["Average profile"] = (
        np.broadcast_to(average["atac"], (len(rna_only), len(average["atac"]))),
        np.broadcast_to(average["rna"], (len(atac_only), len(average["rna"]))),
    )
    rows = []
    for method, (atac, rna) in imputed.items():
        atac = np.asarray(atac.toarray() if sp.issparse(atac) else atac, dtype=np.float32)
        seconds, rate = timings.get(method, (np.nan, np.nan))
        rows.append(
            {
                "method": method,
                **accessibility_scores(atac, true_atac),
                **expression_scores(np.asarray(rna), true_rna),
                "train time (s)": seconds,
            }
        )
        print(rows[-1])
    table = pd.DataFrame(rows).set_index("method")
    header = (
        f"SNARE-seq mosaic imputation (4 paired / 4 RNA-only / 4 ATAC-only samples; ATAC of "
        f"{len(rna_only)} RNA-only cells, RNA of {len(atac_only)} ATAC-only cells), "
        f"{args.epochs} epochs, batch size {args.batch_size}, seed {args.seed}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"scvi-tools {scvi.__version__}, mosaicvi {mosaicvi.__version__}"
    )
    markdown = header + "\n\n" + table.to_markdown(floatfmt=".3f") + "\n"
    print(markdown)
    (args.out / f"snareseq_imputation{args.tag}.md").write_text(markdown)
    table.to_csv(args.out / f"snareseq_imputation{args.tag}.csv")
    if args.skip_de:
        return

    de = model.differential_features(
        "cell_type_coarse", "rna", n_samples=args.de_samples, key_added="rank_features_mosaicvi"
    )
    de.to_csv(args.out / "snareseq_imputation_de_rna.csv.gz")
    genes = top_genes(de, "is_de_fdr_0.05")
    markdown = (
        "Top 10 up-regulated genes per coarse cell type, MosaicVI `differential_features` "
        f"(one-vs-rest, change mode, batch-corrected over the RNA batches, FDR target 0.05, "
        f"{args.de_samples} samples per group); n DE up: genes higher in the group called at the FDR target\n\n"
        + genes.to_markdown()
        + "\n"
    )
    print(markdown)
    (args.out / "snareseq_imputation_top_genes.md").write_text(markdown)
    genes.to_csv(args.out / "snareseq_imputation_top_genes.csv")


if __name__ == "__main__":
    main()
