"""Differential-feature tables in the layout of scanpy's ``rank_genes_groups``."""

from __future__ import annotations

import numpy as np
import pandas as pd

_EPS = 1e-8


def effect_column(result: pd.DataFrame) -> str:
    """The column with each feature's tested effect: ``effect`` (population test) or ``lfc_mean``."""
    return "effect" if "effect" in result.columns else "lfc_mean"


def ranking(result: pd.DataFrame, mode: str) -> pd.Index:
    """Features of one comparison in marker order, as scanpy lists them.

    Vanilla mode: by ``bayes_factor`` (``log P(x1 > x2) / P(x1 <= x2)``), highest first. Change
    mode (whose Bayes factor carries no direction): features higher in group 1 (positive
    :func:`effect_column`) first, strongest evidence first, then the lower ones, strongest
    evidence last; equal evidence (e.g. ``proba_de`` of 1) is ordered by the effect's size.
    """
    if mode != "change":
        return result.sort_values("bayes_factor", ascending=False, kind="stable").index
    effect = result[effect_column(result)]
    ordered = result.assign(_size=effect.abs())
    up = effect > 0
    higher = ordered[up].sort_values(["bayes_factor", "_size"], ascending=False, kind="stable")
    lower = ordered[~up].sort_values(["bayes_factor", "_size"], ascending=True, kind="stable")
    return higher.index.append(lower.index)


def fold_changes(result: pd.DataFrame, mode: str) -> pd.Series:
    """The tested effect in change mode (:func:`effect_column`); ``log2(scale1 / scale2)`` else."""
    if mode == "change":
        return result[effect_column(result)]
    return np.log2(result["scale1"] + _EPS) - np.log2(result["scale2"] + _EPS)


def expected_fdr(proba_de: pd.Series) -> pd.Series:
    """Posterior expected FDR of calling this feature and every more probable one DE."""
    ordered = proba_de.sort_values(ascending=False)
    fdr = (1.0 - ordered).cumsum() / (1.0 + np.arange(len(ordered)))
    return fdr.reindex(proba_de.index)


def rank_groups_layout(
    result: pd.DataFrame, groupby: str, reference: str, mode: str, modality: str
) -> dict:
    """``uns`` entry for ``result`` (one block per ``group1``) as ``sc.tl.rank_genes_groups`` writes.

    Per group, features are in :func:`ranking` order; ``scores`` are the log Bayes factors,
    ``pvals`` are ``1 - proba_de`` (``proba_m2`` in vanilla mode) and ``pvals_adj`` the posterior
    expected FDR.
    """
    groups = list(dict.fromkeys(result["group1"].astype(str)))
    fields = {key: [] for key in ("names", "scores", "logfoldchanges", "pvals", "pvals_adj")}
    for group in groups:
        block = result[result["group1"].astype(str) == group]
        proba = block["proba_de"] if mode == "change" else block["proba_m1"]
        block = block.assign(
            _score=block["bayes_factor"],
            _lfc=fold_changes(block, mode),
            _pval=1.0 - proba,
            _fdr=expected_fdr(proba),
        ).loc[ranking(block, mode)]
        fields["names"].append(block.index.to_numpy(dtype=object))
        fields["scores"].append(block["_score"].to_numpy(dtype=np.float32))
        fields["logfoldchanges"].append(block["_lfc"].to_numpy(dtype=np.float32))
        fields["pvals"].append(block["_pval"].to_numpy(dtype=np.float64))
        fields["pvals_adj"].append(block["_fdr"].to_numpy(dtype=np.float64))
    layout = {
        "params": {
            "groupby": groupby,
            "reference": reference,
            "method": f"mosaicvi_{mode}",
            "use_raw": False,
            "layer": None,
            "corr_method": "posterior expected FDR",
            "modality": modality,
        }
    }
    for key, arrays in fields.items():
        layout[key] = np.rec.fromarrays(arrays, names=groups)
    return layout
