"""Reference mapping on SNARE-seq: label transfer to RNA-only and ATAC-only query samples.

The reference is the paired (RNA+ATAC) samples 09A-09F with ``cell_type_coarse`` labels
(semi-supervised MosaicVI, every cell labelled); the query is 09G-09I with RNA only and 09J-09L
with ATAC only, unlabelled. ``MosaicVI.load_query_data`` maps the query onto the reference and
``predict()`` labels it: accuracy and balanced accuracy against the hidden labels, pooled and per
modality set, before the query fit (0 query epochs: the reference's weights with an average
reference batch in the new slots) and after it, with the query fit's time against the
reference's training time. The comparison is a de novo semi-supervised MosaicVI trained on all
cells (reference + query mosaic, the same labels on the reference cells only) for the
reference's epochs. ``encode_batch`` arms: references with and without batch-conditioned
encoders (without, query cells cannot move in the latent space). Also reported: the largest
change of a reference cell's latent coordinates in the query fit, and (unless ``--skip-scib``)
the scib total of reference + query cells (batch = the 12 samples, label = ``cell_type``).

Writes ``snareseq_query<tag>.md`` / ``.csv``.
"""

from __future__ import annotations

import time

import mudata
import numpy as np
from _data import snareseq
from _metrics import scib_scores
from _runner import seeds, settings_header, train, write_results
from sklearn.metrics import accuracy_score, balanced_accuracy_score

import mosaicvi

EPOCHS = 40
SEEDS = "0"
LABEL, UNKNOWN = "cell_type_coarse", "unknown"
#: Sorted sample positions: reference (paired), RNA-only query, ATAC-only query.
REFERENCE, RNA_QUERY, ATAC_QUERY = slice(0, 6), slice(6, 9), slice(9, 12)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--query-epochs",
        type=int,
        default=None,
        help="epochs of the query fit (default: the query model's own default, a quarter of "
        "the reference's cell visits)",
    )
    parser.add_argument(
        "--encode-batch",
        choices=["off", "on", "both"],
        default="both",
        help="references without and/or with batch-conditioned encoders (default: both)",
    )
    parser.add_argument("--skip-scib", action="store_true", help="no scib-metrics column")
    parser.add_argument("--skip-de-novo", action="store_true", help="no de novo model")


def split(args) -> tuple[mudata.MuData, mudata.MuData, mudata.MuData, dict[str, list[str]]]:
    """``(reference, query, everything as one mosaic, sample groups)``; labels in ``"label"``."""
    paired = snareseq(args)
    batches = sorted(paired.obs["batch"].astype(str).unique())
    groups = {
        "reference": batches[REFERENCE],
        "rna": batches[RNA_QUERY],
        "atac": batches[ATAC_QUERY],
    }
    batch = paired.obs["batch"].astype(str)
    reference = paired[batch.isin(groups["reference"]).to_numpy()].copy()
    reference.obs["label"] = reference.obs[LABEL].astype(str).to_numpy()
    query = mosaicvi.data.mosaic_split(
        paired[batch.isin(groups["rna"] + groups["atac"]).to_numpy()].copy(),
        {"rna": groups["rna"], "atac": groups["atac"]},
    )
    everything = mosaicvi.data.mosaic_split(
        paired,
        {"rna": groups["reference"] + groups["rna"], "atac": groups["reference"] + groups["atac"]},
    )
    known = everything.obs["batch"].astype(str).isin(groups["reference"]).to_numpy()
    everything.obs["label"] = np.where(known, everything.obs[LABEL].astype(str), UNKNOWN)
    return reference, query, everything, groups


def scores(predicted: np.ndarray, truth: np.ndarray, sets: dict[str, np.ndarray]) -> dict:
    """Accuracy and balanced accuracy, pooled and per modality set of the query."""
    row = {}
    for name, cells in {"pooled": np.ones(len(truth), bool), **sets}.items():
        row[f"acc {name}"] = accuracy_score(truth[cells], predicted[cells])
        row[f"bal acc {name}"] = balanced_accuracy_score(truth[cells], predicted[cells])
    return row


def run(args) -> None:
    reference, query, everything, groups = split(args)
    print(
        f"SNARE-seq query mapping: reference {groups['reference']} ({reference.n_obs} paired "
        f"cells), query RNA-only {groups['rna']} + ATAC-only {groups['atac']} ({query.n_obs})"
    )
    truth = query.obs[LABEL].astype(str).to_numpy()
    query_batch = query.obs["batch"].astype(str)
    sets = {
        "RNA-only": query_batch.isin(groups["rna"]).to_numpy(),
        "ATAC-only": query_batch.isin(groups["atac"]).to_numpy(),
    }
    query = query.copy()
    for table in [query.obs, *(m.obs for m in query.mod.values())]:
        table.drop(columns=[c for c in table.columns if "cell_type" in c], inplace=True)
    arms = {"off": [False], "on": [True], "both": [False, True]}[args.encode_batch]
    rows = []
    for seed in seeds(args):
        embeddings = {}
        mosaicvi.MosaicVI.setup_mudata(
            reference, batch_key="batch", labels_key="label", unlabeled_category=UNKNOWN
        )
        for encode_batch in arms:
            name = f"MosaicVI query (encode_batch={encode_batch})"
            model = mosaicvi.MosaicVI(reference, encode_batch=encode_batch)
            reference_time = train(model, args)["train time (s)"]
            z_reference = model.get_latent_representation()
            query_model = mosaicvi.MosaicVI.load_query_data(query.copy(), model)
            rows.append(
                {
                    "method": name,
                    "query epochs": 0,
                    "seed": seed,
                    **scores(query_model.predict().to_numpy(), truth, sets),
                    "reference train time (s)": reference_time,
                }
            )
            start = time.perf_counter()
            query_model.train(
                max_epochs=args.query_epochs,
                batch_size=args.batch_size,
                enable_progress_bar=False,
            )
            fit_time = time.perf_counter() - start
            z_after = query_model.get_latent_representation(reference)
            rows.append(
                {
                    "method": name,
                    "query epochs": len(query_model.history["elbo_train"]),
                    "seed": seed,
                    **scores(query_model.predict().to_numpy(), truth, sets),
                    "reference train time (s)": reference_time,
                    "query fit time (s)": fit_time,
                    "query fit / reference time": fit_time / reference_time,
                    "max reference latent change": float(np.abs(z_after - z_reference).max()),
                }
            )
            z_query = query_model.get_latent_representation()
            embeddings[name] = (z_after, z_query)
        if not args.skip_de_novo:
            mosaicvi.MosaicVI.setup_mudata(
                everything, batch_key="batch", labels_key="label", unlabeled_category=UNKNOWN
            )
            de_novo = mosaicvi.MosaicVI(everything)
            timing = train(de_novo, args)
            cells = everything.obs_names.get_indexer(query.obs_names)
            predicted = de_novo.predict(indices=cells).to_numpy()
            rows.append(
                {
                    "method": "MosaicVI de novo (semi-supervised, all cells)",
                    "query epochs": args.epochs,
                    "seed": seed,
                    **scores(predicted, truth, sets),
                    "de novo train time (s)": timing["train time (s)"],
                }
            )
            z = de_novo.get_latent_representation()
            reference_cells = everything.obs_names.get_indexer(reference.obs_names)
            embeddings[rows[-1]["method"]] = (z[reference_cells], z[cells])
        if not args.skip_scib:
            add_scib(rows, embeddings, reference, query, everything, seed, args)
    header = settings_header(
        args,
        f"SNARE-seq reference mapping (reference 09A-09F paired, {reference.n_obs} cells with "
        f"{LABEL}; query 09G-09I RNA-only + 09J-09L ATAC-only, {query.n_obs} cells, "
        "unlabelled): query label transfer (predict) against the hidden labels",
    )
    write_results(rows, args, "snareseq_query", ["method", "query epochs", "seed"], header)


def add_scib(rows, embeddings, reference, query, everything, seed, args) -> None:
    """scib total of reference + query cells per embedding, added to the matching rows."""
    names = reference.obs_names.append(query.obs_names)
    obs = everything.obs.loc[names, ["batch", "cell_type"]]
    stacked = {name: np.vstack(parts) for name, parts in embeddings.items()}
    table = scib_scores(obs, stacked, "batch", "cell_type", n_jobs=args.n_jobs)
    for row in rows:
        if row["seed"] == seed and row["method"] in table.index and row["query epochs"] != 0:
            row["scib total (ref + query)"] = table.loc[row["method"], "Total"]
