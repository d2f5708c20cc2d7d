"""Diagonal integration: SNARE-seq with 6 RNA-only and 6 ATAC-only samples, no cell paired.

Side by side in one run: MosaicVI with the guidance graph (the ``gene_region_link`` matrix
shipped with the SNARE-seq file), MosaicVI without it, and GLUE (scglue) on the same graph when
it is installed. Every method trains on the RNA of samples 1-6 and the ATAC of samples 7-12
(sorted order). The cells were paired before the split, so after training each cell's RNA and
ATAC are embedded separately (modality-specific encoders) and compared:

- **FOSCTTM** over all 10,309 cells (0 = every cell's ATAC code is nearer to its own RNA code
  than any other cell's; 0.5 = random), and the part of it made of cells of another coarse type
  (a perfect alignment of the coarse types, random within each, would score 0.112, none of it
  from other types);
- **label transfer**: a 15-nearest-neighbour vote from the RNA-only cells to the ATAC-only cells
  in the training latent, accuracy and balanced accuracy on ``cell_type_coarse``;
- **scib-metrics** totals on the training latent (batch = the 12 samples, label = ``cell_type``).

Further MosaicVI + graph rows encode ATAC from the LSI components only (``"lsi"``) or from the
binarised TF-IDF of every peak only (``"tfidf"``) instead of the default of both
(``"tfidf_lsi"``), to show what each view adds (SNARE-seq cells have a median of 82 open peaks
out of 25,734); ``--extra-runs`` adds rows with other model or training arguments.

Reference rows put the numbers in context (``_reference_baselines.py``):

- a joint PCA of RNA and ATAC gene activity, the naive unpaired baseline (always computed: it is
  the unintegrated embedding that scib's PCR comparison measures against);
- a ridge regression from ATAC to RNA fitted on the hidden pairing (cross-fitted; a gauge of how
  much RNA state a linear map reads from this ATAC, not a competitor);
- with ``--paired-reference``, MosaicVI trained on the *paired* cells, its codes taken from each
  modality alone: how close this architecture brings a cell's two codes when shown the pairing;
- logistic regressions trained on labelled RNA or ATAC of samples 1-6 and scored on samples
  7-12: how well each modality tells the coarse cell types apart across these samples.

For MosaicVI with the graph it also records the graph loss per epoch and how close linked
gene-peak embeddings are compared with random gene-peak pairs, before and after training.

Usage::

    python benchmarks/snareseq_diagonal.py --epochs 40
    python benchmarks/snareseq_diagonal.py --skip-mosaicvi --skip-glue --skip-references \
        --extra-runs '{"200 epochs": {"train": {"max_epochs": 200}}}' --tag _e200

Prints markdown tables and writes them (and CSVs) to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch
from _metrics import foscttm, knn_label_transfer, scib_scores
from _mosaic_data import snareseq_diagonal
from _reference_baselines import (
    joint_pca_gene_activity,
    ridge_pairing_reference,
    supervised_label_references,
)

import mosaicvi

LABEL = "cell_type_coarse"
UNINTEGRATED = "reference: joint PCA of RNA and ATAC gene activity"


def linked_vs_random_cosine(model: mosaicvi.MosaicVI, links, seed: int = 0) -> tuple[float, float]:
    """Mean cosine similarity of linked gene-peak embeddings, and of random gene-peak pairs."""
    qv = model.module.graph_encoder()
    v = torch.nn.functional.normalize(qv.loc.detach(), dim=1).cpu().numpy()
    genes = slice(*model.module.feature_slices["rna"])
    peaks = slice(*model.module.feature_slices["atac"])
    coo = links.tocoo()
    linked = (v[genes][coo.row] * v[peaks][coo.col]).sum(1).mean()
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, coo.shape[0], coo.nnz)
    cols = rng.integers(0, coo.shape[1], coo.nnz)
    random = (v[genes][rows] * v[peaks][cols]).sum(1).mean()
    return float(linked), float(random)


def run_mosaicvi(diagonal, paired, graph, args, train_kwargs=None, **model_kwargs) -> dict:
    """Train MosaicVI (with or without a graph); latents of the training data and per modality."""
    scvi.settings.seed = args.seed
    mosaicvi.MosaicVI.setup_mudata(diagonal, batch_key="batch")
    model = mosaicvi.MosaicVI(diagonal, guidance_graph=graph, **model_kwargs)
    result = {}
    if graph is not None:
        result["cosine_before"] = linked_vs_random_cosine(model, args.links, args.seed)
    start = time.perf_counter()
    model.train(
        **{
            "max_epochs": args.epochs,
            "batch_size": args.batch_size,
            "early_stopping": False,
            **(train_kwargs or {}),
        }
    )
    result["seconds"] = time.perf_counter() - start
    result["epochs"] = len(model.history["elbo_train"])
    result["z"] = model.get_latent_representation()
    result["z_rna"] = model.get_latent_representation(paired, modalities=["rna"])
    result["z_atac"] = model.get_latent_representation(paired, modalities=["atac"])
    if graph is not None:
        result["cosine_after"] = linked_vs_random_cosine(model, args.links, args.seed)
        history = pd.concat(
            [model.history[k] for k in ("graph_nll_train", "graph_kl_train", "elbo_train")],
            axis=1,
        )
        result["history"] = history
    return result


def run_glue(diagonal, paired, args) -> dict | None:
    """GLUE on the same split and graph, or ``None`` when scglue is not installed."""
    try:
        from _glue_runner import glue_embeddings
    except ImportError as error:
        print(f"GLUE skipped: {error}")
        return None
    z_rna, z_atac, info = glue_embeddings(
        diagonal["rna"],
        diagonal["atac"],
        paired["rna"],
        paired["atac"],
        args.links,
        batch_key="batch",
        seed=args.seed,
        max_epochs=args.glue_epochs,
        fit_kws=None
        if args.glue_align_burnin is None
        else {"align_burnin": args.glue_align_burnin},
    )
    rna_rows = paired.obs_names.get_indexer(diagonal["rna"].obs_names)
    atac_rows = paired.obs_names.get_indexer(diagonal["atac"].obs_names)
    z = np.zeros((diagonal.n_obs, z_rna.shape[1]), dtype=np.float32)
    z[diagonal.obs_names.get_indexer(diagonal["rna"].obs_names)] = z_rna[rna_rows]
    z[diagonal.obs_names.get_indexer(diagonal["atac"].obs_names)] = z_atac[atac_rows]
    return {"z": z, "z_rna": z_rna, "z_atac": z_atac, **info}


def run_paired_reference(diagonal, paired, args) -> dict:
    """MosaicVI trained on the fully paired data (uses the pairing): per-modality codes.

    Not a competitor: a gauge of how close this architecture brings a cell's RNA and ATAC codes
    when it is *shown* which profiles belong together. ``z`` is each cell's code from the
    modality it keeps in the diagonal split, as for the other rows.
    """
    scvi.settings.seed = args.seed
    paired = paired.copy()
    mosaicvi.MosaicVI.setup_mudata(paired, batch_key="batch")
    model = mosaicvi.MosaicVI(paired)
    start = time.perf_counter()
    model.train(max_epochs=args.epochs, batch_size=args.batch_size, early_stopping=False)
    seconds = time.perf_counter() - start
    z_rna = model.get_latent_representation(paired, modalities=["rna"])
    z_atac = model.get_latent_representation(paired, modalities=["atac"])
    kept_rna = paired.obs_names.isin(diagonal["rna"].obs_names)
    z = np.where(kept_rna[:, None], z_rna, z_atac)
    rows = paired.obs_names.get_indexer(diagonal.obs_names)
    return {
        "z": z[rows],
        "z_rna": z_rna,
        "z_atac": z_atac,
        "seconds": seconds,
        "epochs": len(model.history["elbo_train"]),
    }


def device_name() -> str:
    """The GPU MosaicVI trains on, or the processor."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"


def graph_training_tables(with_graph: dict) -> str:
    """Markdown: graph loss per epoch, and linked vs random gene-peak cosine before/after."""
    history = with_graph["history"]
    every = max(1, len(history) // 10)
    curve = history.iloc[list(range(0, len(history), every)) + [len(history) - 1]]
    cosine = pd.DataFrame(
        [with_graph["cosine_before"], with_graph["cosine_after"]],
        index=["before training", "after training"],
        columns=["linked gene-peak pairs", "random gene-peak pairs"],
    )
    return (
        "\nMosaicVI + graph: graph loss per epoch (training)\n\n"
        + curve.to_markdown(floatfmt=".3f")
        + "\n\nMean cosine similarity of feature embeddings\n\n"
        + cosine.to_markdown(floatfmt=".3f")
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--glue-epochs", type=int, default=None, help="cap per GLUE stage; default: GLUE's own"
    )
    parser.add_argument(
        "--glue-align-burnin",
        type=int,
        default=None,
        help="GLUE's align_burnin (epochs before the discriminator starts); default: GLUE's own",
    )
    parser.add_argument("--skip-glue", action="store_true")
    parser.add_argument(
        "--atac-inputs",
        nargs="*",
        default=["lsi", "tfidf"],
        help="extra MosaicVI + graph rows with these ATAC encoder inputs (default: tfidf_lsi)",
    )
    parser.add_argument(
        "--skip-mosaicvi",
        action="store_true",
        help="only GLUE and the reference rows (e.g. to run the slow GLUE on its own)",
    )
    parser.add_argument(
        "--extra-runs",
        type=json.loads,
        default={},
        help='more MosaicVI + graph rows, as JSON {"name": {"model": {...}, "train": {...}}}',
    )
    parser.add_argument(
        "--paired-reference",
        action="store_true",
        help="also train MosaicVI on the fully paired data (a gauge that uses the pairing)",
    )
    parser.add_argument(
        "--skip-references",
        action="store_true",
        help="leave out the ridge and supervised references (the joint PCA stays: scib's "
        "batch metrics compare against it)",
    )
    parser.add_argument(
        "--skip-scib",
        action="store_true",
        help="leave out the scib-metrics columns (FOSCTTM and label transfer only; faster)",
    )
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)

    diagonal, paired, layout = snareseq_diagonal()
    args.links = paired["rna"].varm["gene_region_link"]
    print(
        f"Diagonal SNARE-seq: {diagonal.n_obs} cells; RNA in {layout['rna']}; ATAC in {layout['atac']}"
    )
    graph = mosaicvi.data.guidance_graph(
        diagonal, links={("rna", "atac"): diagonal["rna"].varm["gene_region_link"]}
    )
    runs = {}
    if not args.skip_mosaicvi:
        runs["MosaicVI + graph"] = run_mosaicvi(diagonal, paired, graph, args)
        runs["MosaicVI, no graph"] = run_mosaicvi(diagonal, paired, None, args)
    for atac_input in [] if args.skip_mosaicvi else args.atac_inputs:
        runs[f"MosaicVI + graph, ATAC input {atac_input!r}"] = run_mosaicvi(
            diagonal, paired, graph, args, input_transforms={"atac": atac_input}
        )
    for name, spec in args.extra_runs.items():
        runs[f"MosaicVI + graph, {name}"] = run_mosaicvi(
            diagonal, paired, graph, args, train_kwargs=spec.get("train"), **spec.get("model", {})
        )
    if args.paired_reference:
        runs["reference, uses the pairing: MosaicVI trained on paired cells"] = (
            run_paired_reference(diagonal, paired, args)
        )
    if not args.skip_glue:
        glue = run_glue(diagonal, paired, args)
        if glue is not None:
            name = (
                "GLUE" if args.glue_epochs is None else f"GLUE, <= {args.glue_epochs} epochs/stage"
            )
            runs[name] = glue
    # The unintegrated baseline is always there: scib's PCR comparison measures against it.
    runs[UNINTEGRATED] = joint_pca_gene_activity(diagonal, paired, args.links)
    if not args.skip_references:
        runs["reference, uses the pairing: ridge ATAC LSI -> RNA PCs"] = ridge_pairing_reference(
            diagonal, paired
        )

    labels = diagonal.obs[LABEL].astype(str).to_numpy()
    is_rna = diagonal.obs_names.isin(diagonal["rna"].obs_names)
    scores = None
    if not args.skip_scib:
        scores = scib_scores(
            diagonal.obs,
            {name: run["z"] for name, run in runs.items()},
            "batch",
            "cell_type",
            pre_integrated=UNINTEGRATED,
            n_jobs=args.n_jobs,
        )
    paired_labels = paired.obs[LABEL].astype(str).to_numpy()
    rows = []
    for name, run in runs.items():
        accuracy, balanced = knn_label_transfer(
            run["z"][is_rna], labels[is_rna], run["z"][~is_rna], labels[~is_rna]
        )
        total, other_type = foscttm(run["z_rna"], run["z_atac"], labels=paired_labels)
        row = {
            "method": name,
            "FOSCTTM": total,
            "of which other types": other_type,
            "RNA->ATAC accuracy": accuracy,
            "RNA->ATAC balanced acc.": balanced,
        }
        if scores is not None:
            row["scib bio"] = scores.loc[name, "Bio conservation"]
            row["scib batch"] = scores.loc[name, "Batch correction"]
            row["scib total"] = scores.loc[name, "Total"]
        rows.append({**row, "train time (s)": run["seconds"], "epochs": run["epochs"]})
    table = pd.DataFrame(rows).set_index("method")
    header = (
        f"Diagonal SNARE-seq (RNA in 6 samples, ATAC in the other 6, {diagonal.n_obs} cells, none "
        f"paired), MosaicVI {args.epochs} epochs at batch size {args.batch_size}, seed {args.seed}, "
        f"{device_name()}, "
        f"scvi-tools {scvi.__version__}, mosaicvi {mosaicvi.__version__}; label transfer on "
        f"`{LABEL}`, scib on `cell_type`"
    )
    markdown = header + "\n\n" + table.to_markdown(floatfmt=".3f") + "\n"
    if not args.skip_references:
        markdown += "\n" + supervised_label_references(diagonal, paired, LABEL).to_markdown(
            floatfmt=".3f"
        )
        markdown += (
            "\n\nSupervised references use labels (and, for ATAC, profiles) that the split "
            "hides: a logistic regression trained on the cells of the RNA samples, scored on the "
            "cells of the ATAC samples. They gauge how well cell types can be told apart from "
            "each modality across these samples.\n"
        )

    if "MosaicVI + graph" in runs:
        markdown += graph_training_tables(runs["MosaicVI + graph"])
    print(markdown)
    stem = f"snareseq_diagonal{args.tag}"
    (args.out / f"{stem}.md").write_text(markdown)
    table.to_csv(args.out / f"{stem}.csv")
    if "MosaicVI + graph" in runs:
        runs["MosaicVI + graph"]["history"].to_csv(args.out / f"{stem}_graph_history.csv")


if __name__ == "__main__":
    main()
