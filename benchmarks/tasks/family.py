"""Multimodal-VAE family options against the default on the SNARE-seq mosaic (one row each).

SNARE-seq mouse cortex split into 4 paired (RNA+ATAC), 4 RNA-only and 4 ATAC-only samples (as
``--task mosaic``). Each row trains one MosaicVI (unsupervised, same seeds, epochs and batch
size) with one option changed from the default, and reports:

- integration: scib-metrics' Benchmarker on the latent (batch = sample, label = ``cell_type``,
  raw scores, total = 0.6 bio + 0.4 batch), the unintegrated PCA as the PCR reference;
- imputation: the hidden ATAC of the RNA-only cells (AUROC over cells x peaks, mean per-peak
  Pearson) and the hidden RNA of the ATAC-only cells (mean per-cell and per-gene Pearson of
  log-normalised values), as ``--task imputation``;
- coherence (:mod:`mosaicvi.metrics`, labels ``cell_type``, half the cells held out): latent
  accuracy of the RNA and ATAC views and across them, cross-modal coherence, and FOSCTTM
  between the RNA-only and ATAC-only codes of the paired cells;
- with ``--realism``: the validation reconstruction NLL per modality and the realism of the
  imputed hidden modality (``_realism_metrics.py``: held-out real-vs-imputed classifier AUC on
  draws from the decoded distribution, per-feature mean correlation, log2 variance ratio);
- with ``--likelihood``: the validation cells' marginal log-likelihood
  (:meth:`~mosaicvi.MosaicVI.get_marginal_ll`, ``--mc-samples`` draws per expert), overall and
  per kind of sample, and their ELBO;
- training time (indicative only on a shared CPU).

Rows (``--rows``, default all): ``default``; ``output_discriminator`` (``MosaicVI(...,
output_discriminator_kwargs={})``, its defaults) and ``output_discriminator_w0.001`` (the same
with ``{"weight": 0.001}``); ``prior_modality`` (``prior="modality"``); ``moe``
(``fusion="moe"``, one importance sample); ``moe_iw`` (``fusion="moe"``,
``train(..., n_importance_samples=K)``, K from ``--importance-samples``). Each finished row
replaces the row of the same name and seed in ``snareseq_family_options<tag>.csv`` and the
table ``.md`` (one column per row) is rewritten, so rows can be (re)run one at a time.
"""

from __future__ import annotations

import numpy as np
from _data import hidden_truth, sample_groups, snareseq_mosaic, unintegrated_pca
from _imputation_metrics import accessibility_scores, expression_scores
from _metrics import scib_scores
from _realism_metrics import realism_scores
from _runner import scib_columns, seeds, settings_header, train, write_results

import mosaicvi

EPOCHS = 15
#: Row name -> (description, MosaicVI keyword arguments, train keyword arguments).
ROWS = {
    "default": ("default (attention fusion, normal prior)", {}, {}),
    "output_discriminator": (
        "output_discriminator_kwargs={}",
        {"output_discriminator_kwargs": {}},
        {},
    ),
    "output_discriminator_w0.001": (
        'output_discriminator_kwargs={"weight": 0.001}',
        {"output_discriminator_kwargs": {"weight": 0.001}},
        {},
    ),
    "prior_modality": ('prior="modality"', {"prior": "modality"}, {}),
    "moe": ('fusion="moe", K=1', {"fusion": "moe"}, {}),
    "moe_iw": ('fusion="moe", n_importance_samples=K', {"fusion": "moe"}, {}),
}
LABELS = "cell_type"


def add_arguments(parser) -> None:
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--importance-samples", type=int, default=4, help="K of the moe_iw row")
    parser.add_argument("--skip-scib", action="store_true")
    parser.add_argument("--realism", action="store_true", help="add the realism columns")
    parser.add_argument(
        "--likelihood", action="store_true", help="add the marginal log-likelihood columns"
    )
    parser.add_argument("--mc-samples", type=int, default=50, help="draws for --likelihood")
    parser.add_argument("--save-models", type=str, default=None, help="save each model here")


def row_settings(row: str, importance_samples: int) -> tuple[str, dict, dict]:
    """``(description, model kwargs, train kwargs)`` of a row; ``moe_iw`` takes K from the caller."""
    description, model_kwargs, train_kwargs = ROWS[row]
    if row == "moe_iw":
        train_kwargs = {"n_importance_samples": importance_samples}
        description = description.replace("=K", f"={importance_samples}")
    return description, model_kwargs, train_kwargs


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
        "FOSCTTM paired": mosaicvi.metrics.foscttm(z_rna, z_atac),
    }


def imputation_scores(model, truth: dict, cells: dict) -> dict[str, float]:
    """Hidden ATAC of RNA-only cells and hidden RNA of ATAC-only cells, as ``--task imputation``."""
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


def likelihood_scores(model, groups: dict, n_mc_samples: int) -> dict[str, float]:
    """Mean marginal LL and ELBO of the validation cells, overall and per group of samples."""
    cells = np.sort(np.asarray(model.validation_indices))
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


def score_row(model, data: dict, args, seed: int) -> dict[str, float]:
    """Every score group of the module docstring that is switched on, for one trained model."""
    result = {}
    z = model.get_latent_representation()
    result["finite"] = bool(np.isfinite(z).all())
    if not args.skip_scib:
        scores = scib_scores(
            data["mosaic"].obs, {"Unintegrated": data["pca"], "row": z}, "batch", LABELS
        )
        result.update(scib_columns(scores, "row"))
        result["unintegrated scib total"] = scores.loc["Unintegrated", "Total"]
    groups = {"imputation": (imputation_scores, (model, data["truth"], data["cells"]))}
    groups["coherence"] = (
        coherence_scores,
        (model, np.flatnonzero(data["groups"]["paired"]), seed),
    )
    if args.realism:
        groups["realism"] = (realism_scores, (model, data["truth"], data["cells"], seed))
    if args.likelihood:
        groups["likelihood"] = (likelihood_scores, (model, data["groups"], args.mc_samples))
    for group, (compute, arguments) in groups.items():
        try:  # a failing score group keeps the trained row's other scores
            result.update(compute(*arguments))
        except Exception as error:
            print(f"{group} scores failed: {error!r}", flush=True)
    return result


def run(args) -> None:
    mosaic, paired, layout = snareseq_mosaic(args)
    cells, truth = hidden_truth(mosaic, paired, layout)
    data = {"mosaic": mosaic, "cells": cells, "truth": truth}
    data["groups"] = sample_groups(mosaic, layout)
    mosaicvi.MosaicVI.setup_mudata(mosaic, batch_key="batch", labels_key=LABELS)
    header = settings_header(
        args,
        f"SNARE-seq mosaic (4 paired / 4 RNA-only / 4 ATAC-only samples, {mosaic.n_obs} cells), "
        "unsupervised, one option changed from the default per column",
    )
    rows = []
    for seed in seeds(args):
        data["pca"] = None if args.skip_scib else unintegrated_pca(mosaic, seed=seed)
        for row in args.rows:
            description, model_kwargs, train_kwargs = row_settings(row, args.importance_samples)
            model = mosaicvi.MosaicVI(mosaic, **model_kwargs)
            timing = train(model, args, **train_kwargs)
            result = {"row": row, "seed": seed, "option": description, "epochs": args.epochs}
            result.update(score_row(model, data, args, seed))
            history = {k: float(v.iloc[-1, 0]) for k, v in model.history.items()}
            for key in ("output_discriminator_loss_train", "output_generator_loss_train"):
                if key in history:
                    result[key.removesuffix("_train")] = history[key]
            rows.append({**result, **timing})
            if args.save_models is not None:
                model.save(f"{args.save_models}/{row}_seed{seed}", overwrite=True)
            write_results(rows, args, "snareseq_family_options", ["row", "seed"], header, True)
