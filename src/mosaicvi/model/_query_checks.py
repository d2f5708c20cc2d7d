"""Categories of new data (a query) that the model was not trained with, reported by field."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scvi import REGISTRY_KEYS

if TYPE_CHECKING:
    from collections.abc import Mapping


def check_query_categories(
    obs: pd.DataFrame,
    pulled: Mapping[str, pd.Series],
    keys: Mapping[str, str | None],
    source_registry: Mapping,
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
        if key is None:
            continue
        column = obs[key] if key in obs.columns else pulled.get(key)
        if column is None:
            continue
        values = pd.Index(pd.unique(column.astype(object).dropna()))
        unseen = values.difference(pd.Index(categories.astype(object)))
        if len(unseen):
            what = (
                "cells of batches the model never saw cannot be corrected for batch"
                if argument == "batch_key"
                else "map them to a trained category or drop those cells"
            )
            raise ValueError(
                f"`{argument}={key!r}` has categories the model was not trained with: "
                f"{unseen[:5].tolist()} (trained: {categories[:10].tolist()}). Use the training "
                f"categories: {what}."
            )
