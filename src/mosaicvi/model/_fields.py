"""Register a :class:`~mosaicvi.data._mosaic_layout.MosaicLayout` with scvi-tools' AnnDataManager."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, AnnDataManagerValidationCheck, fields

from mosaicvi._compat import quiet_obsm_column_names
from mosaicvi._constants import (
    FEATURE_NAMES_REGISTRY_KEY,
    PRESENCE_KEY,
    PRESENCE_OBSM_KEY,
    modality_obsm_key,
    modality_registry_key,
)
from mosaicvi.data._feature_masks import checked_feature_masks
from mosaicvi.model._query_checks import check_query_categories

if TYPE_CHECKING:
    from anndata import AnnData

    from mosaicvi.data._mosaic_layout import MosaicLayout


def _field_classes(is_mudata: bool) -> tuple[type, type, type]:
    if is_mudata:
        return (
            fields.MuDataObsmField,
            fields.MuDataCategoricalObsField,
            fields.MuDataCategoricalJointObsField,
        )
    return fields.ObsmField, fields.CategoricalObsField, fields.CategoricalJointObsField


def _labels_field(
    is_mudata: bool, labels_key: str | None, unlabeled_category: str | None, scope: dict
) -> fields.BaseAnnDataField:
    """Plain categorical labels, or labels with an unlabelled category (semi-supervised)."""
    if unlabeled_category is None:
        cls = fields.MuDataCategoricalObsField if is_mudata else fields.CategoricalObsField
        return cls(REGISTRY_KEYS.LABELS_KEY, labels_key, **scope)
    if labels_key is None:
        raise ValueError(
            "`unlabeled_category` was given without `labels_key`; name the labels column too."
        )
    cls = (
        fields.MuDataLabelsWithUnlabeledObsField
        if is_mudata
        else fields.LabelsWithUnlabeledObsField
    )
    return cls(REGISTRY_KEYS.LABELS_KEY, labels_key, unlabeled_category, **scope)


def _training_batches(source_registry: dict | None) -> list[str] | None:
    """The batches of a saved model's registry (new data may hold some of them only)."""
    if source_registry is None:
        return None
    field = source_registry["field_registries"][REGISTRY_KEYS.BATCH_KEY]
    return [str(b) for b in field["state_registry"]["categorical_mapping"]]


def obs_keys(
    batch_key: str | None, labels_key: str | None, categorical_covariate_keys: list[str] | None
) -> dict[str, str | None]:
    """Setup argument name -> obs column, for the columns setup reads (and checks)."""
    keys = {"batch_key": batch_key, "labels_key": labels_key}
    for i, key in enumerate(categorical_covariate_keys or []):
        keys[f"categorical_covariate_keys[{i}]"] = key
    return keys


def register_layout(
    data: AnnData | MuData,
    layout: MosaicLayout,
    setup_method_args: dict,
    keys: dict[str, str | None],
    **kwargs,
) -> AnnDataManager:
    """Write ``layout`` to ``data`` and register its fields; on failure ``data`` is restored.

    ``keys`` is the output of :func:`obs_keys`. The resolved modality kinds are stored as the
    ``modalities`` setup argument, so a reload sets the data up the same way, and the feature
    names of each modality go into the registry under ``FEATURE_NAMES_REGISTRY_KEY``. ``kwargs`` are
    passed to :meth:`scvi.data.AnnDataManager.register_fields` (``source_registry`` when a saved
    model is loaded).
    """
    setup_method_args["setup_args"]["modalities"] = layout.kinds
    setup_method_args[FEATURE_NAMES_REGISTRY_KEY] = layout.feature_names
    batch_key, labels_key = keys["batch_key"], keys["labels_key"]
    if "feature_masks" in setup_method_args["setup_args"]:  # setup_mudata's option
        batches = None
        if batch_key is not None:
            batches = layout.obs_columns.get(batch_key)
            batches = data.obs[batch_key] if batches is None else batches
        setup_method_args["setup_args"]["feature_masks"] = checked_feature_masks(
            setup_method_args["setup_args"]["feature_masks"],
            layout.feature_names,
            None if batches is None else pd.Series(np.asarray(batches)),
            layout.presence,
            _training_batches(kwargs.get("source_registry")),
        )
    categorical_covariate_keys = [
        key for name, key in keys.items() if name.startswith("categorical_covariate_keys")
    ] or None
    is_mudata = isinstance(data, MuData)
    obsm_field, categorical_field, joint_field = _field_classes(is_mudata)
    scope = {"mod_key": None} if is_mudata else {}
    anndata_fields = [
        obsm_field(modality_registry_key(m), modality_obsm_key(m), is_count_data=True, **scope)
        for m in layout.kinds
    ]
    anndata_fields += [
        obsm_field(PRESENCE_KEY, PRESENCE_OBSM_KEY, **scope),
        categorical_field(REGISTRY_KEYS.BATCH_KEY, batch_key, **scope),
        _labels_field(
            is_mudata, labels_key, setup_method_args["setup_args"].get("unlabeled_category"), scope
        ),
        joint_field(REGISTRY_KEYS.CAT_COVS_KEY, categorical_covariate_keys, **scope),
    ]
    manager = AnnDataManager(
        fields=anndata_fields,
        setup_method_args=setup_method_args,
        validation_checks=AnnDataManagerValidationCheck(check_fully_paired_mudata=False),
    )
    if kwargs.get("source_registry") is not None:
        check_query_categories(
            data.obs,
            layout.obs_columns,
            keys,
            kwargs["source_registry"],
            extend_batches=bool(kwargs.get("extend_categories")),
        )
    undo = layout.write_to(data)
    try:
        with quiet_obsm_column_names():
            manager.register_fields(data, **kwargs)
    except Exception:
        undo()
        raise
    return manager
