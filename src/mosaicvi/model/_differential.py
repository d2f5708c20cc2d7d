"""Bayes-factor differential features of any modality between groups of cells."""

from __future__ import annotations

import logging
import warnings
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mudata import MuData

from mosaicvi._compat import DifferentialComputation, fdr_de_prediction
from mosaicvi._constants import PRESENCE_KEY, modality_registry_key
from mosaicvi.model._checks import check_modality, decoding_library
from mosaicvi.model._de_statistics import (
    lfc_with_estimated_pseudocounts,
    log_fold_change,
    probability_difference,
    raw_statistics,
)
from mosaicvi.model._rank_groups_layout import rank_groups_layout

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Literal

    from anndata import AnnData

_EPS = 1e-8
logger = logging.getLogger(__name__)


def differential_features(
    model,
    groupby: str,
    modality: str,
    group1: str | Sequence[str] | None,
    group2: str | None,
    mode: Literal["change", "vanilla"],
    delta: float | None,
    fdr_target: float,
    batch_correction: bool,
    n_samples: int,
    adata: MuData | AnnData | None,
    pseudocounts: float | None,
    change: Literal["log-fold", "difference"] | None,
    library_size: float | Literal["median"] | None,
    threshold_counts: float,
    batch_size: int | None,
    key_added: str | None,
    all_stats: bool,
    silent: bool,
    **kwargs,
) -> pd.DataFrame:
    """Bayes-factor test of every feature of ``modality`` between groups of cells.

    The algorithm of :meth:`mosaicvi.MosaicVI.differential_features` (whose docstring describes
    every argument), on the trained ``model``: posterior samples come from its
    ``get_normalized_expression``.
    """
    model._check_if_trained(warn=False)
    adata = model._validate_anndata(adata)
    modality = check_modality(modality, model.modalities)
    if mode not in ("change", "vanilla"):
        raise ValueError(f"`mode` must be 'change' or 'vanilla', got {mode!r}.")
    if not 0.0 < fdr_target < 1.0:
        raise ValueError(f"`fdr_target` must be in (0, 1), got {fdr_target}.")
    labels, comparisons, reference = group_comparisons(adata, groupby, group1, group2)
    defaults = model.module.likelihoods[modality].differential_defaults(model.modalities[modality])
    change = defaults.change if change is None else change
    if change not in ("log-fold", "difference"):
        raise ValueError(f"`change` must be 'log-fold' or 'difference', got {change!r}.")
    delta = defaults.delta if delta is None else delta
    pseudocounts = defaults.pseudocounts if pseudocounts is None else pseudocounts
    library_size = defaults.library_size if library_size is None else library_size
    decoding_library(model.module, modality, library_size)  # checks it before any sampling

    manager = model.get_anndata_manager(adata, required=True)
    counts = manager.get_from_registry(modality_registry_key(modality))
    column = list(model.modalities).index(modality)
    measured = np.asarray(manager.get_from_registry(PRESENCE_KEY), dtype=bool)[:, column]
    model_fn = partial(
        model.get_normalized_expression,
        modality=modality,
        library_size=library_size,
        batch_size=batch_size,
        return_numpy=True,
    )
    computation = DifferentialComputation(model_fn, None, manager)
    batches = model.measuring_batches(modality) if batch_correction else None
    names = model.feature_names[modality]
    results = []
    for g1, idx1, idx2 in comparisons:
        if not silent:
            logger.info("differential_features: %s, %s vs %s", modality, g1, reference)
        stats = raw_statistics(counts, measured, idx1, idx2)
        if stats["n_measured1"][0] == 0 or stats["n_measured2"][0] == 0:
            warnings.warn(
                f"In {g1!r} vs {reference!r} a group has no cell that measured {modality!r}: "
                "its values are imputed only, and its raw statistics are NaN.",
                UserWarning,
                stacklevel=2,
            )
        bayes_kwargs = dict(kwargs)
        record: dict = {}
        if mode == "change":
            bayes_kwargs.update(delta=delta, pseudocounts=pseudocounts)
            if change == "difference":
                bayes_kwargs["change_fn"] = probability_difference
            elif pseudocounts is None:
                unexpressed = [stats[f"raw_mean{i}"] < threshold_counts for i in "12"]
                bayes_kwargs["change_fn"] = lfc_with_estimated_pseudocounts(*unexpressed, record)
                bayes_kwargs["pseudocounts"] = 1.0  # factor on the estimate (see there)
            else:
                bayes_kwargs["change_fn"] = log_fold_change
        info = computation.get_bayes_factors(
            idx1,
            idx2,
            mode=mode,
            batchid1=batches,
            batchid2=batches,
            use_observed_batches=not batch_correction,
            n_samples_overall=n_samples,
            **bayes_kwargs,
        )
        result = pd.DataFrame(info, index=names.copy())
        if mode == "change":
            proba = result["proba_de"]
            # scvi-tools 1.5 signs this column by direction, 1.4 does not: unsigned here.
            result["bayes_factor"] = np.log(proba + _EPS) - np.log(1.0 - proba + _EPS)
            if "pseudocounts" in record:
                result["pseudocounts"] = record["pseudocounts"]
        if all_stats:
            result = result.assign(**stats)
        sort_key = "proba_de" if mode == "change" else "bayes_factor"
        result = result.sort_values(sort_key, ascending=False, kind="stable")
        if mode == "change":
            result[f"is_de_fdr_{fdr_target}"] = fdr_de_prediction(result["proba_de"], fdr_target)
        result["comparison"] = f"{g1} vs {reference}"
        result["group1"] = g1
        result["group2"] = reference
        results.append(result)
    table = pd.concat(results, axis=0)
    if key_added is not None:
        write_rank_groups(adata, modality, labels, groupby, table, reference, mode, key_added)
    return table


def group_comparisons(
    adata: MuData | AnnData,
    groupby: str,
    group1: str | Sequence[str] | None,
    group2: str | None,
) -> tuple[pd.Series, list[tuple[str, np.ndarray, np.ndarray]], str]:
    """Group labels, ``(group1, mask1, mask2)`` per comparison, and the reference's name."""
    if groupby not in adata.obs.columns:
        hint = (
            " (`mdata.pull_obs()` copies the modalities' columns)"
            if isinstance(adata, MuData)
            else ""
        )
        raise ValueError(
            f"`groupby` {groupby!r} is not a column of the data's obs{hint}; columns: "
            f"{list(adata.obs.columns)}."
        )
    labels = adata.obs[groupby]
    known = labels.notna().to_numpy()
    text = labels.astype(str)
    categories = list(pd.unique(text[known]))
    if isinstance(labels.dtype, pd.CategoricalDtype):
        present = set(categories)
        categories = [str(c) for c in labels.cat.categories if str(c) in present]
    if group1 is None:
        chosen = categories
        if len(chosen) < 2:
            raise ValueError(f"`groupby` {groupby!r} has fewer than two groups: {chosen}.")
    else:
        chosen = [group1] if isinstance(group1, str) else [str(g) for g in group1]
    for group in [*chosen, *([] if group2 is None else [group2])]:
        if str(group) not in categories:
            raise ValueError(
                f"Group {group!r} is not in column {groupby!r}; groups: {categories}."
            )
    comparisons = []
    for g1 in chosen:
        idx1 = (text == str(g1)).to_numpy() & known
        idx2 = (text == str(group2)).to_numpy() if group2 is not None else known & ~idx1
        if g1 == group2:
            raise ValueError(f"`group1` and `group2` are both {group2!r}.")
        if not idx2.any():
            raise ValueError(f"No cell left to compare group {g1!r} with.")
        comparisons.append((str(g1), idx1, idx2))
    return labels, comparisons, "rest" if group2 is None else str(group2)


def write_rank_groups(
    adata: MuData | AnnData,
    modality: str,
    labels: pd.Series,
    groupby: str,
    table: pd.DataFrame,
    reference: str,
    mode: str,
    key: str,
) -> None:
    """Store ``table`` in ``uns[key]`` of the modality's AnnData (rank_genes_groups layout)."""
    target = adata.mod[modality] if isinstance(adata, MuData) else adata
    layout = rank_groups_layout(table, groupby, reference, mode, modality)
    if groupby not in target.obs.columns:
        values = labels.reindex(target.obs_names)
        target.obs[groupby] = pd.Categorical(
            values.astype(object),
            categories=labels.astype("category").cat.categories,
        )
    target.uns[key] = layout
