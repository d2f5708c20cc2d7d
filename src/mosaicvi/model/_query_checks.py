"""Checks of new data (a query) against the training data: features and categories."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scvi import REGISTRY_KEYS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def check_query_categories(
    obs: pd.DataFrame,
    pulled: Mapping[str, pd.Series],
    keys: Mapping[str, str | None],
    source_registry: Mapping,
    extend_batches: bool = False,
) -> None:
    """Raise a ValueError naming each obs column with values unknown to ``source_registry``.

    Parameters
    ----------
    obs
        The global ``obs`` of the new data.
    pulled
        Columns setup pulls from the modalities (not yet in ``obs``).
    keys
        Setup argument name -> obs column (``batch_key``, ``labels_key``, covariates).
    source_registry
        The registry of the trained model.
    extend_batches
        Accept new batches (a query set up for ``MosaicVI.load_query_data``).

    scvi-tools refuses such data too, but with a message that names neither the setup argument
    nor what to do about it.
    """
    fields = source_registry.get("field_registries", {})
    known: dict[str, np.ndarray] = {}
    for argument, registry_key in (
        ("batch_key", REGISTRY_KEYS.BATCH_KEY),
        ("labels_key", REGISTRY_KEYS.LABELS_KEY),
    ):
        mapping = fields.get(registry_key, {}).get("state_registry", {}).get("categorical_mapping")
        if mapping is not None:
            known[argument] = np.asarray(mapping)
    covariates = fields.get(REGISTRY_KEYS.CAT_COVS_KEY, {}).get("state_registry", {})
    for i, categories in enumerate(covariates.get("mappings", {}).values()):
        known[f"categorical_covariate_keys[{i}]"] = np.asarray(categories)
    for argument, categories in known.items():
        key = keys.get(argument)
        if key is None or (extend_batches and argument == "batch_key"):
            continue
        column = obs[key] if key in obs.columns else pulled.get(key)
        if column is None:
            continue
        values = pd.Index(pd.unique(column.astype(object).dropna()))
        unseen = values.difference(pd.Index(categories.astype(object)))
        if len(unseen):
            what = (
                "cells of batches the model never saw cannot be corrected for batch; map "
                "them with `MosaicVI.load_query_data(query, model)`"
                if argument == "batch_key"
                else "map them to a trained category or drop those cells"
            )
            raise ValueError(
                f"`{argument}={key!r}` has categories the model was not trained with: "
                f"{unseen[:5].tolist()} (trained: {categories[:10].tolist()}). Use the training "
                f"categories: {what}."
            )


def check_same_features(
    given_names: Mapping[str, Sequence[str]], trained_names: Mapping[str, pd.Index]
) -> None:
    """Raise if a modality of the data has other features (or order) than the model's.

    ``given_names`` must be read from the data itself, not from its registry: a copy of
    registered data shares the registry of the original even after its modalities are edited.
    """
    for m, trained in trained_names.items():
        if m not in given_names:  # a modality the new data did not measure
            continue
        given = pd.Index(given_names[m])
        if not given.equals(trained):
            unseen = given.difference(trained)[:3].tolist()
            raise ValueError(
                f"Modality {m!r} of the data has other features than the model was trained "
                f"on ({len(given)} vs {len(trained)}; e.g. new: {unseen}). Subset and order "
                f"them like the training data: `mdata.mod[{m!r}] = "
                f"mdata[{m!r}][:, model.feature_names[{m!r}]].copy()`."
            )
