"""Bayes-factor differential features of any modality between groups of cells."""

from __future__ import annotations

import logging
import warnings
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.model.base import VAEMixin
from scvi.utils import track

from mosaicvi._compat import DifferentialComputation, fdr_de_prediction
from mosaicvi._constants import PRESENCE_KEY, modality_registry_key
from mosaicvi.model._checks import check_modality, decoding_library
from mosaicvi.model._comparison_groups import group_comparisons, index_comparison
from mosaicvi.model._de_statistics import (
    lfc_with_estimated_pseudocounts,
    log_fold_change,
    probability_difference,
    raw_statistics,
)
from mosaicvi.model._input_statistics import batch_feature_masks
from mosaicvi.model._population_test import PopulationTest
from mosaicvi.model._rank_groups_layout import effect_column, rank_groups_layout

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Literal

    from anndata import AnnData

_EPS = 1e-8
logger = logging.getLogger(__name__)
#: Default posterior samples per group: enough for stable Bayes factors, and DE over every cell
#: type of a 10,000-cell RNA + ATAC data set in minutes on a CPU.
N_DE_SAMPLES = 2000


def differential_features(
    model,
    groupby: str | None,
    modality: str,
    group1: str | Sequence[str] | None,
    group2: str | None,
    mode: Literal["change", "vanilla"],
    delta: float | None,
    fdr_target: float,
    batch_correction: bool,
    n_samples: int,
    adata: MuData | AnnData | None = None,
    pseudocounts: float | None = None,
    change: Literal["log-fold", "difference"] | None = None,
    library_size: float | Literal["median"] | None = None,
    threshold_counts: float = 0.01,
    batch_size: int | None = None,
    key_added: str | None = None,
    all_stats: bool = True,
    silent: bool = False,
    idx1: Sequence[int] | Sequence[bool] | str | None = None,
    idx2: Sequence[int] | Sequence[bool] | str | None = None,
    batchid1: Sequence[str] | None = None,
    batchid2: Sequence[str] | None = None,
    compare: Literal["populations", "cells"] = "populations",
    **kwargs,
) -> pd.DataFrame:
    """Bayes-factor test of every feature of ``modality`` between groups of cells.

    The algorithm of :meth:`mosaicvi.MosaicVI.differential_features` (whose docstring describes
    every argument), on the trained ``model``: posterior samples come from its
    ``get_normalized_expression``. With ``idx1``, the two groups are those cells instead of the
    groups of ``groupby`` (nothing is written to ``uns``).
    """
    model._check_if_trained(warn=False)
    adata = model._validate_anndata(adata)
    modality = check_modality(modality, model.modalities)
    if mode not in ("change", "vanilla"):
        raise ValueError(f"`mode` must be 'change' or 'vanilla', got {mode!r}.")
    if not 0.0 < fdr_target < 1.0:
        raise ValueError(f"`fdr_target` must be in (0, 1), got {fdr_target}.")
    if compare not in ("populations", "cells"):
        raise ValueError(f"`compare` must be 'populations' or 'cells', got {compare!r}.")
    if idx1 is not None:
        labels, comparisons, reference = index_comparison(adata, idx1, idx2)
    else:
        labels, comparisons, reference = group_comparisons(adata, groupby, group1, group2)
    defaults = model.module.likelihoods[modality].differential_defaults(model.modalities[modality])
    change = defaults.change if change is None else change
    if change not in ("log-fold", "difference"):
        raise ValueError(f"`change` must be 'log-fold' or 'difference', got {change!r}.")
    delta = defaults.delta if delta is None else delta
    pseudocounts = defaults.pseudocounts if pseudocounts is None else pseudocounts
    library_size = defaults.library_size if library_size is None else library_size
    unit = decoding_library(model.module, modality, library_size)  # checked before sampling
    binary = model.module.likelihoods[modality].binary

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
    measuring = model.measuring_batches(modality)
    # scvi-tools decodes into every batch when one side names none: never into other batches
    corrected = batch_correction or batchid1 is not None or batchid2 is not None
    batches1 = decoding_batches(batchid1, "batchid1", measuring if corrected else None, measuring)
    batches2 = decoding_batches(batchid2, "batchid2", measuring if corrected else None, measuring)
    names = model.feature_names[modality]
    feature_mask = None
    if modality in (tables := batch_feature_masks(manager)):
        codes = np.asarray(manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
        feature_mask = (codes, tables[modality])
    results = []
    for g1, cells1, cells2 in track(
        comparisons, description=f"{modality}: groups", disable=silent, style="tqdm"
    ):
        stats = raw_statistics(counts, measured, cells1, cells2, feature_mask)
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
            cells1,
            cells2,
            mode=mode,
            batchid1=batches1,
            batchid2=batches2,
            use_observed_batches=not corrected,
            n_samples_overall=n_samples,
            **bayes_kwargs,
        )
        result = pd.DataFrame(info, index=names.copy())
        if mode == "change" and compare == "populations":
            rows = [np.flatnonzero(cells & measured) for cells in (cells1, cells2)]
            offset = record.get("pseudocounts", pseudocounts) or 0.0
            test = PopulationTest(change, delta, offset, 1.0 if binary else unit, binary)
            result = test.apply(result, counts, rows, feature_mask, f"{g1!r} vs {reference!r}")
        if mode == "change":
            proba = result["proba_de"]
            # scvi-tools 1.5 signs this column by direction, 1.4 does not: unsigned here.
            result["bayes_factor"] = np.log(proba + _EPS) - np.log(1.0 - proba + _EPS)
            if "pseudocounts" in record:
                result["pseudocounts"] = record["pseudocounts"]
        if all_stats:
            result = result.assign(**stats)
        if mode == "change":  # equal evidence (e.g. proba_de 1): the larger effect first
            size = result[effect_column(result)].abs().to_numpy()
            result = result.iloc[np.lexsort((-size, -result["proba_de"].to_numpy()))]
        else:
            result = result.sort_values("bayes_factor", ascending=False, kind="stable")
        if mode == "change":
            result[f"is_de_fdr_{fdr_target}"] = fdr_de_prediction(result["proba_de"], fdr_target)
        result["comparison"] = f"{g1} vs {reference}"
        result["group1"] = g1
        result["group2"] = reference
        results.append(result)
    table = pd.concat(results, axis=0)
    if key_added is not None and idx1 is None:
        write_rank_groups(adata, modality, labels, groupby, table, reference, mode, key_added)
    return table


def differential_abundance(
    model,
    adata: MuData | AnnData | None,
    sample_key: str | None,
    batch_size: int,
    num_cells_posterior: int | None,
    dof: float | None,
) -> pd.DataFrame:
    """scvi-tools' ``VAEMixin.differential_abundance`` (1.4 and 1.5), returning its table.

    See :meth:`mosaicvi.MosaicVI.differential_abundance`.
    """
    data = model._validate_anndata(adata)
    if sample_key is None or sample_key not in data.obs.columns:
        raise ValueError(
            f"`sample_key={sample_key!r}` must name a column of obs with each cell's sample, "
            f"e.g. 'batch'; columns: {list(data.obs.columns)}."
        )
    VAEMixin.differential_abundance(
        model,
        adata=adata,
        sample_key=sample_key,
        batch_size=batch_size,
        num_cells_posterior=num_cells_posterior,
        dof=dof,
    )
    return data.obsm["da_log_probs"]


def named_differential(
    model, kind: Literal["expression", "accessibility"], modality: str | None, **arguments
) -> pd.DataFrame:
    """``differential_expression`` / ``differential_accessibility``: scvi-tools' names.

    ``modality`` defaults to the model's RNA modality (``"expression"``) or its first modality
    with a binary likelihood (``"accessibility"``, ATAC); ``arguments`` go to
    :func:`differential_features`. Accessibility results get MULTIVI's columns too
    (:func:`accessibility_columns`).
    """
    modality = default_modality(model, kind, modality)
    table = differential_features(model, modality=modality, **arguments)
    if kind == "accessibility":
        table = accessibility_columns(table, arguments["fdr_target"])
    return table


def default_modality(model, kind: str, modality: str | None) -> str:
    """The modality a ``differential_<kind>`` call tests (checked when given)."""
    if modality is not None:
        return check_modality(modality, model.modalities)
    likelihoods = model.module.likelihoods
    if kind == "expression":
        chosen = [m for m, k in model.modalities.items() if k == "rna"]
    else:
        chosen = [m for m in model.modalities if likelihoods[m].binary]
        chosen += [m for m, k in model.modalities.items() if k == "atac" and m not in chosen]
    if not chosen:
        what = "RNA" if kind == "expression" else "binary (ATAC)"
        raise ValueError(
            f"The model has no {what} modality to test; name one with `modality=` "
            f"(modalities: {list(model.modalities)}), or use `differential_features`."
        )
    return chosen[0]


def accessibility_columns(table: pd.DataFrame, fdr_target: float) -> pd.DataFrame:
    """``table`` with MULTIVI's differential accessibility columns added.

    ``prob_da`` and ``is_da_fdr`` (``proba_de`` / ``proba_m1`` and the FDR call), ``est_prob1/2``
    (``scale1/2``), ``effect_size = est_prob2 - est_prob1``; with the raw statistics also
    ``emp_mean1/2`` and ``emp_prob1/2`` (open fraction of each group's measuring cells) and
    ``emp_effect = emp_mean2 - emp_mean1``. As in MULTIVI the effects are group 2 minus group 1,
    the opposite sign of ``lfc_mean``.
    """
    change = "proba_de" in table.columns
    extra = {
        "prob_da": table["proba_de"] if change else table["proba_m1"],
        "is_da_fdr": table[f"is_de_fdr_{fdr_target}"] if change else False,
        "est_prob1": table["scale1"],
        "est_prob2": table["scale2"],
        "effect_size": table["scale2"] - table["scale1"],
    }
    if "non_zeros_proportion1" in table.columns:
        for i in "12":
            extra[f"emp_mean{i}"] = extra[f"emp_prob{i}"] = table[f"non_zeros_proportion{i}"]
        extra["emp_effect"] = extra["emp_mean2"] - extra["emp_mean1"]
    return table.assign(**extra)


def decoding_batches(
    chosen: Sequence[str] | None, name: str, default: list[str] | None, measuring: list[str]
) -> list[str] | None:
    """Batches a group is decoded into: ``chosen`` (checked to have measured it) or ``default``."""
    if chosen is None:
        return default
    chosen = [chosen] if isinstance(chosen, str) else [str(b) for b in chosen]
    unknown = [b for b in chosen if b not in measuring]
    if unknown or not chosen:
        raise ValueError(
            f"`{name}` names batches {unknown or chosen} that did not measure the modality, so "
            f"have no trained decoder for it; choose among {measuring}."
        )
    return chosen


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
