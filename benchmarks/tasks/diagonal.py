"""Diagonal integration: SNARE-seq with 6 RNA-only and 6 ATAC-only samples, no cell paired.

Side by side in one run: MosaicVI with the guidance graph (the ``gene_region_link`` matrix
shipped with the SNARE-seq file, or with ``--graph GRCm38`` links built from genomic coordinates
and the shipped mouse gene table), MosaicVI without it, and GLUE (scglue) on the same graph when
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

``--diagnostics`` adds, per row: how well a 15-NN classifier tells RNA-only from ATAC-only codes
apart (3-fold cross-validated accuracy; 0.5 = mixed), the held-out accuracy of an MLP(128, 128)
probe of the same (``mosaicvi.metrics.modality_mixing_scores``: trained on 80 % of the codes,
raw and chance-adjusted) and its kNN mixing ratio (1 = mixed as if shuffled), the label transfer within each modality
(its first three samples -> its other three) and the mean latent norm and spread per modality.

Writes ``snareseq_diagonal<tag>.md`` / ``.csv`` and, for MosaicVI + graph,
``snareseq_diagonal<tag>_graph_history.csv`` (graph loss per epoch).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from _data import snareseq_diagonal
from _metrics import scib_scores
from _reference_baselines import (
    joint_pca_gene_activity,
    ridge_pairing_reference,
    supervised_label_references,
)
from _runner import scib_columns, seeds, settings_header, train, write_results
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

import mosaicvi
from mosaicvi.metrics import foscttm, knn_label_transfer, modality_mixing_scores

EPOCHS = 40
LABEL = "cell_type_coarse"
UNINTEGRATED = "reference: joint PCA of RNA and ATAC gene activity"


GRAPH = "MosaicVI + graph"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--glue-epochs", type=int, default=None, help="cap per GLUE stage; default: GLUE's own"
    )
    parser.add_argument(
        "--glue-align-burnin",
        type=int,
        default=None,
        help="GLUE's align_burnin (epochs before the discriminator starts); default: GLUE's own",
    )
    parser.add_argument("--skip-glue", action="store_true", help="no GLUE row (needs scglue)")
    parser.add_argument(
        "--atac-inputs",
        nargs="*",
        default=["lsi", "tfidf"],
        help="extra MosaicVI + graph rows with these ATAC encoder inputs (default: tfidf_lsi)",
    )
    parser.add_argument(
        "--skip-mosaicvi",
        action="store_true",
        help="no default MosaicVI rows (only --extra-runs, GLUE and the references)",
    )
    parser.add_argument(
        "--skip-no-graph", action="store_true", help="no MosaicVI row without the graph"
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
    parser.add_argument(
        "--diagnostics", action="store_true", help="add the diagnostic columns (see above)"
    )
    parser.add_argument(
        "--graph",
        choices=["links", "GRCm38"],
        default="links",
        help="gene-peak links of the guidance graph: the file's `gene_region_link` matrix "
        "(default; GLUE gets the same) or built from coordinates with the shipped GRCm38 table",
    )


def linked_vs_random_cosine(model: mosaicvi.MosaicVI, links, seed: int) -> dict[str, float]:
    """Mean cosine similarity of linked gene-peak embeddings, and of random gene-peak pairs."""
    embeddings = model.get_feature_embeddings()
    genes, peaks = (
        embeddings[m].to_numpy() / np.linalg.norm(embeddings[m].to_numpy(), axis=1, keepdims=True)
        for m in ("rna", "atac")
    )
    coo = links.tocoo()
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, coo.shape[0], coo.nnz)
    cols = rng.integers(0, coo.shape[1], coo.nnz)
    return {
        "cosine linked gene-peak": float((genes[coo.row] * peaks[coo.col]).sum(1).mean()),
        "cosine random gene-peak": float((genes[rows] * peaks[cols]).sum(1).mean()),
    }


def codes(model, data, paired) -> dict:
    """Training latent and each cell's code from RNA alone and from ATAC alone."""
    return {
        "z": model.get_latent_representation(data),
        "z_rna": model.get_latent_representation(paired, modalities=["rna"]),
        "z_atac": model.get_latent_representation(paired, modalities=["atac"]),
        "epochs": len(model.history["elbo_train"]),
    }


def run_mosaicvi(diagonal, paired, graph, args, seed, spec) -> dict:
    """Train MosaicVI (``spec``: model and train keyword arguments); its codes and timing."""
    model = mosaicvi.MosaicVI(diagonal, guidance_graph=graph, **spec.get("model", {}))
    timing = train(model, args, **spec.get("train", {}))
    result = {**codes(model, diagonal, paired), "seconds": timing["train time (s)"]}
    if graph is not None:
        result["extra"] = linked_vs_random_cosine(model, args.links, seed)
        keys = ("graph_nll_train", "graph_kl_train", "elbo_train")
        result["history"] = pd.concat([model.history[k] for k in keys], axis=1)
    return result


def run_glue(diagonal, paired, args, seed) -> dict | None:
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
        seed=seed,
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
    paired = paired.copy()
    mosaicvi.MosaicVI.setup_mudata(paired, batch_key="batch")
    model = mosaicvi.MosaicVI(paired)
    timing = train(model, args)
    result = codes(model, paired, paired)
    kept_rna = paired.obs_names.isin(diagonal["rna"].obs_names)
    z = np.where(kept_rna[:, None], result["z_rna"], result["z_atac"])
    result["z"] = z[paired.obs_names.get_indexer(diagonal.obs_names)]
    return {**result, "seconds": timing["train time (s)"]}


def diagnostics(z: np.ndarray, is_rna: np.ndarray, labels, batch) -> dict[str, float]:
    """Modality separability, within-modality transfer and latent spread (``--diagnostics``)."""
    knn = KNeighborsClassifier(15)
    result = {"modality kNN acc (0.5 = mixed)": cross_val_score(knn, z, is_rna, cv=3).mean()}
    mixing = modality_mixing_scores(z, np.where(is_rna, "rna", "atac"))
    result["modality probe acc. (MLP)"] = mixing["probe_accuracy"]
    result["probe, chance-adjusted"] = mixing["probe_chance_adjusted"]
    result["kNN mixing ratio"] = mixing["knn_mixing_ratio"]
    for name, cells in (("RNA", is_rna), ("ATAC", ~is_rna)):
        first = np.isin(batch, sorted(set(batch[cells]))[:3])
        result[f"{name} within-modality transfer"] = knn_label_transfer(
            z[cells & first], labels[cells & first], z[cells & ~first], labels[cells & ~first]
        )[0]
        result[f"{name} latent norm"] = float(np.linalg.norm(z[cells], axis=1).mean())
        result[f"{name} latent SD"] = float(z[cells].std(0).mean())
    return result


def train_runs(diagonal, paired, graph, args, seed) -> dict[str, dict]:
    """Every row of one seed: MosaicVI runs, GLUE, the references."""
    runs = {}
    specs = {} if args.skip_mosaicvi else {GRAPH: {}}
    if not (args.skip_mosaicvi or args.skip_no_graph):
        specs["MosaicVI, no graph"] = None
    for atac_input in [] if args.skip_mosaicvi else args.atac_inputs:
        specs[f"{GRAPH}, ATAC input {atac_input!r}"] = {
            "model": {"input_transforms": {"atac": atac_input}}
        }
    specs.update({f"{GRAPH}, {name}": spec for name, spec in args.extra_runs.items()})
    for name, spec in specs.items():
        runs[name] = run_mosaicvi(
            diagonal, paired, None if spec is None else graph, args, seed, spec or {}
        )
    if args.paired_reference:
        runs["reference, uses the pairing: MosaicVI trained on paired cells"] = (
            run_paired_reference(diagonal, paired, args)
        )
    if not args.skip_glue:
        glue = run_glue(diagonal, paired, args, seed)
        if glue is not None:
            cap = "" if args.glue_epochs is None else f", <= {args.glue_epochs} epochs/stage"
            runs[f"GLUE{cap}"] = glue
    # The unintegrated baseline is always there: scib's PCR comparison measures against it.
    runs[UNINTEGRATED] = joint_pca_gene_activity(diagonal, paired, args.links)
    if not args.skip_references:
        runs["reference, uses the pairing: ridge ATAC LSI -> RNA PCs"] = ridge_pairing_reference(
            diagonal, paired
        )
    return runs


def score_runs(runs: dict, diagonal, paired, args, seed) -> list[dict]:
    """One row per run: FOSCTTM, RNA->ATAC transfer, scib and the optional columns."""
    labels = diagonal.obs[LABEL].astype(str).to_numpy()
    batch = diagonal.obs["batch"].astype(str).to_numpy()
    is_rna = diagonal.obs_names.isin(diagonal["rna"].obs_names)
    scores = None
    if not args.skip_scib:
        latents = {name: run["z"] for name, run in runs.items()}
        scores = scib_scores(
            diagonal.obs, latents, "batch", "cell_type", UNINTEGRATED, n_jobs=args.n_jobs
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
            "seed": seed,
            "FOSCTTM": total,
            "of which other types": other_type,
            "RNA->ATAC accuracy": accuracy,
            "RNA->ATAC balanced acc.": balanced,
        }
        if scores is not None:
            row.update(scib_columns(scores, name))
        if args.diagnostics:
            row.update(diagnostics(run["z"], is_rna, labels, batch))
        row.update(run.get("extra", {}))
        rows.append({**row, "train time (s)": run["seconds"], "epochs": run["epochs"]})
    return rows


def run(args) -> None:
    diagonal, paired, layout = snareseq_diagonal(args)
    args.links = paired["rna"].varm["gene_region_link"]
    print(
        f"Diagonal SNARE-seq: {diagonal.n_obs} cells; RNA in {layout['rna']}; ATAC in {layout['atac']}"
    )
    if args.graph == "links":
        graph = mosaicvi.data.guidance_graph(diagonal, links={("rna", "atac"): args.links})
    else:  # GLUE, the joint PCA and the cosine gauge get the same gene-peak links
        graph = mosaicvi.data.guidance_graph(diagonal, gene_coordinates=args.graph)
        n_genes = diagonal["rna"].n_vars
        args.links = graph.weights[:n_genes, n_genes:].tocsr()
    mosaicvi.MosaicVI.setup_mudata(diagonal, batch_key="batch")
    rows = []
    for seed in seeds(args):
        runs = train_runs(diagonal, paired, graph, args, seed)
        rows += score_runs(runs, diagonal, paired, args, seed)
        if GRAPH in runs:
            path = args.out / f"snareseq_diagonal{args.tag}_graph_history.csv"
            runs[GRAPH]["history"].assign(seed=seed).to_csv(path)
    notes = ""
    if not args.skip_references:
        notes = supervised_label_references(diagonal, paired, LABEL).to_markdown(floatfmt=".3f")
        notes += (
            "\n\nSupervised references use labels (and, for ATAC, profiles) that the split "
            "hides: a logistic regression trained on the cells of the RNA samples, scored on the "
            "cells of the ATAC samples. They gauge how well cell types can be told apart from "
            "each modality across these samples."
        )
    header = settings_header(
        args,
        f"Diagonal SNARE-seq (RNA in 6 samples, ATAC in the other 6, {diagonal.n_obs} cells, "
        f"none paired); label transfer and FOSCTTM split on `{LABEL}`, scib on `cell_type`",
    )
    write_results(rows, args, "snareseq_diagonal", ["method", "seed"], header, notes=notes)
