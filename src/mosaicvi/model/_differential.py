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


class DifferentialFeaturesMixin:
    """Differential features (genes, peaks, proteins) from the decoders, by Bayes factors."""

    def differential_features(
        self,
        groupby: str,
        modality: str,
        group1: str | Sequence[str] | None = None,
        group2: str | None = None,
        mode: Literal["change", "vanilla"] = "change",
        delta: float | None = None,
        fdr_target: float = 0.05,
        batch_correction: bool = True,
        n_samples: int = 5000,
        adata: MuData | AnnData | None = None,
        pseudocounts: float | None = None,
        change: Literal["log-fold", "difference"] | None = None,
        library_size: float | Literal["median"] | None = None,
        threshold_counts: float = 0.01,
        batch_size: int | None = None,
        key_added: str | None = "rank_features_mosaicvi",
        all_stats: bool = True,
        silent: bool = True,
        **kwargs,
    ) -> pd.DataFrame:
        """Bayes-factor test of every feature of ``modality`` between groups of cells.

        Posterior samples of the decoded values of ``modality`` (:meth:`get_normalized_expression`)
        are drawn for the cells of each group, including cells that never measured
        ``modality`` (their values are imputed from the modalities they have), and compared with
        scvi-tools' Bayes-factor machinery (``"change"`` mode as Boyeau et al., ``"vanilla"`` as
        Lopez et al.). Raw statistics (means, non-zero fractions) use only the cells that
        measured ``modality``. With ``group1=None`` every group is tested against the rest.

        Per-modality defaults (each can be overridden): RNA and generic counts are tested as scVI
        does (proportions, log2 fold change, ``delta=0.25``, pseudocounts estimated from features
        a group's measuring cells do not express); ATAC on accessibility probabilities of a
        typical cell, with the *difference* of probabilities as the effect (``lfc_*`` columns then
        hold ``p1 - p2``) and ``delta=0.05``; ADT on expected counts at the median library,
        log2 fold change with a prior count of 1 and ``delta=0.25``.

        Parameters
        ----------
        groupby
            Column of ``adata.obs`` (the MuData's global ``obs``) with the groups.
        modality
            Modality to test, e.g. ``"rna"``, ``"atac"`` or ``"adt"``.
        group1
            Group (or groups, each tested in turn) of ``groupby``; ``None``: every group.
        group2
            Group to compare with; ``None``: all other cells with a group.
        mode
            ``"change"`` (effect size beyond ``delta``) or ``"vanilla"`` (``P(x1 > x2)``).
        delta
            Smallest effect that counts as differential; ``None``: the modality's default.
        fdr_target
            Target posterior expected FDR of the ``is_de_fdr_<fdr_target>`` column.
        batch_correction
            Decode every cell into each batch that measured ``modality`` (never into batches
            that did not) and pair samples within batches; else decode into observed batches.
        n_samples
            Posterior samples per group (scvi-tools' ``n_samples_overall``).
        adata
            Data registered like the training data (default: the training data).
        pseudocounts
            Offset of the log fold change; ``None``: the modality's default.
        change
            ``"log-fold"`` or ``"difference"``; ``None``: the modality's default.
        library_size
            Library to decode at (see :meth:`get_normalized_expression`); ``None``: the
            modality's default.
        threshold_counts
            Raw mean (over a group's measuring cells) below which a feature counts as unexpressed
            when pseudocounts are estimated.
        batch_size
            Minibatch size (default: scvi-tools' setting).
        key_added
            Also store the result in ``uns[key_added]`` of the modality's AnnData
            (``mdata.mod[modality]``; the AnnData itself when the model was set up with
            ``setup_anndata``), in the layout of :func:`scanpy.tl.rank_genes_groups`: per group,
            features higher in the group first (strongest evidence first), lower ones last;
            scores are log Bayes factors, ``pvals`` are
            ``1 - proba_de`` and ``pvals_adj`` the posterior expected FDR. The ``groupby`` column is
            copied into that AnnData's ``obs`` when missing, so ``sc.pl.rank_genes_groups_dotplot``
            and ``sc.get.rank_genes_groups_df`` work on it. ``None``: write nothing.
        all_stats
            Add the raw statistics of each group over its measuring cells.
        silent
            Do not log progress per group (at INFO level).
        **kwargs
            Passed to scvi-tools' ``DifferentialComputation.get_bayes_factors`` (e.g.
            ``test_mode``, ``cred_interval_lvls``, ``use_permutation``).

        Returns
        -------
        DataFrame with one row per feature and comparison (features as index): ``proba_de``,
        ``proba_not_de``, ``bayes_factor``, ``scale1``, ``scale2``, ``pseudocounts``, ``delta``,
        ``lfc_mean``, ``lfc_median``, ``lfc_std``, ``lfc_min``, ``lfc_max``,
        ``is_de_fdr_<fdr_target>`` (``"change"`` mode; ``proba_m1``, ``proba_m2``,
        ``bayes_factor``, ``scale1``, ``scale2`` in ``"vanilla"`` mode), the raw statistics
        ``raw_mean1/2``, ``non_zeros_proportion1/2``, ``raw_normalized_mean1/2``,
        ``n_measured1/2``, and ``comparison``, ``group1``, ``group2``. Within a comparison rows
        are sorted by ``proba_de`` (``bayes_factor`` in vanilla mode).

        Examples
        --------
        >>> de = model.differential_features("cell_type", "rna")  # doctest: +SKIP
        >>> de[de["is_de_fdr_0.05"] & (de["lfc_mean"] > 0)].groupby("group1").head(5)
        ... # doctest: +SKIP
        >>> import scanpy as sc
        >>> sc.pl.rank_genes_groups_dotplot(mdata["rna"], key="rank_features_mosaicvi")
        ... # doctest: +SKIP
        >>> peaks = model.differential_features("cell_type", "atac", group1="Ast", key_added=None)
        ... # doctest: +SKIP
        """
        self._check_if_trained(warn=False)
        adata = self._validate_anndata(adata)
        modality = self._check_modality(modality)
        if mode not in ("change", "vanilla"):
            raise ValueError(f"`mode` must be 'change' or 'vanilla', got {mode!r}.")
        if not 0.0 < fdr_target < 1.0:
            raise ValueError(f"`fdr_target` must be in (0, 1), got {fdr_target}.")
        labels, comparisons, reference = self._comparisons(adata, groupby, group1, group2)
        defaults = self.module.likelihoods[modality].differential_defaults(
            self.modalities[modality]
        )
        change = defaults.change if change is None else change
        if change not in ("log-fold", "difference"):
            raise ValueError(f"`change` must be 'log-fold' or 'difference', got {change!r}.")
        delta = defaults.delta if delta is None else delta
        pseudocounts = defaults.pseudocounts if pseudocounts is None else pseudocounts
        library_size = defaults.library_size if library_size is None else library_size
        self._decoding_library(modality, library_size)  # checks it before any sampling

        manager = self.get_anndata_manager(adata, required=True)
        counts = manager.get_from_registry(modality_registry_key(modality))
        column = list(self.modalities).index(modality)
        measured = np.asarray(manager.get_from_registry(PRESENCE_KEY), dtype=bool)[:, column]
        model_fn = partial(
            self.get_normalized_expression,
            modality=modality,
            library_size=library_size,
            batch_size=batch_size,
            return_numpy=True,
        )
        computation = DifferentialComputation(model_fn, None, manager)
        batches = self.measuring_batches(modality) if batch_correction else None
        names = self.feature_names[modality]
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
                    bayes_kwargs["change_fn"] = lfc_with_estimated_pseudocounts(
                        *unexpressed, record
                    )
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
                result[f"is_de_fdr_{fdr_target}"] = fdr_de_prediction(
                    result["proba_de"], fdr_target
                )
            result["comparison"] = f"{g1} vs {reference}"
            result["group1"] = g1
            result["group2"] = reference
            results.append(result)
        table = pd.concat(results, axis=0)
        if key_added is not None:
            self._write_rank_groups(
                adata, modality, labels, groupby, table, reference, mode, key_added
            )
        return table

    def _comparisons(
        self,
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

    def _write_rank_groups(
        self,
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
