"""New data for a trained model: layouts with modalities the data lacks, and query preparation.

A model trained on RNA + ATAC can read cells that measured only some of its modalities: the
modalities the new data lacks get all-zero rows and a ``False`` presence column, exactly as the
cells of the training data that did not measure them. :func:`prepare_query_mudata` orders each
modality's features as the reference's (scvi-tools' ``prepare_query_mudata``), and reports
reference features the query lacks instead of filling them silently with measured zeros.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData
from scvi import REGISTRY_KEYS

from mosaicvi._compat import layer_names
from mosaicvi._constants import FEATURE_NAMES_REGISTRY_KEY
from mosaicvi.data._mosaic_layout import MosaicLayout, build_mosaic_layout
from mosaicvi.model._safe_io import load_registry

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    from anndata import AnnData

    from mosaicvi import MosaicVI

logger = logging.getLogger(__name__)

#: ``var`` column :func:`prepare_query_mudata` writes with ``missing_features="zeros"``: ``True``
#: for a reference feature the query did not have (padded with zeros).
PADDED_VAR_KEY = "mosaicvi_padded"
MissingFeatures = Literal["raise", "unmeasured", "zeros"]


def setup_layout(
    mdata: MuData,
    modalities: Mapping[str, str] | Sequence[str] | None,
    layers: Mapping[str, str | None] | str | None,
    keys: dict[str, str | None],
    source_registry: Mapping | None = None,
    **register_kwargs,
) -> MosaicLayout:
    """:func:`build_mosaic_layout`, or for data set up like a model's, one that may lack modalities.

    With ``source_registry`` (new data read by a trained model), modalities of the model that
    ``mdata`` does not have get all-zero rows and a ``False`` presence column (their features are
    the model's), and a missing ``labels_key`` column is filled with the ``unlabeled_category``
    of a semi-supervised model. ``register_kwargs`` (setup's other keywords) are not used.
    """
    if source_registry is None:
        return build_mosaic_layout(mdata, modalities, layers, keys)
    kinds = dict(modalities)
    present = {m: k for m, k in kinds.items() if m in getattr(mdata, "mod", kinds)}
    if not present:
        raise ValueError(
            f"The data has none of the model's modalities {list(kinds)} (it has "
            f"{list(getattr(mdata, 'mod', []))}); name them like the training data."
        )
    if isinstance(layers, dict):
        layers = {m: layer for m, layer in layers.items() if m in present}
    keys = dict(keys)
    unlabeled = _unlabeled_category(source_registry)
    labels_key = keys.get("labels_key")
    fill_labels = (
        unlabeled is not None
        and labels_key is not None
        and isinstance(mdata, MuData)
        and labels_key not in mdata.obs.columns
        and not any(labels_key in mdata.mod[m].obs.columns for m in present)
    )
    if fill_labels:
        keys["labels_key"] = None
    layout = build_mosaic_layout(mdata, present, layers, keys)
    if fill_labels:
        layout.obs_columns[labels_key] = pd.Series(unlabeled, index=mdata.obs_names, dtype=object)
    names = source_registry[FEATURE_NAMES_REGISTRY_KEY]
    counts, presence = {}, {}
    for m in kinds:
        if m in present:
            counts[m], presence[m] = layout.counts[m], layout.presence[m].to_numpy()
        else:
            counts[m] = sp.csr_matrix((mdata.n_obs, len(names[m])), dtype=np.float32)
            presence[m] = np.zeros(mdata.n_obs, dtype=bool)
            layout.feature_names[m] = list(names[m])
    layout.kinds = kinds
    layout.counts = counts
    layout.presence = pd.DataFrame(presence, index=layout.presence.index)
    layout.feature_names = {m: layout.feature_names[m] for m in kinds}
    return layout


def _unlabeled_category(registry: Mapping):
    state = (
        registry.get("field_registries", {})
        .get(REGISTRY_KEYS.LABELS_KEY, {})
        .get("state_registry", {})
    )
    return state.get("unlabeled_category")


def check_known_modalities(mdata: MuData, reference_modalities: Sequence[str]) -> None:
    """Refuse a query with a modality the reference never saw (a ValueError naming it)."""
    unknown = [m for m in mdata.mod if m not in reference_modalities]
    if unknown:
        raise ValueError(
            f"The query has modalities {unknown} that the reference model was not trained on "
            f"(its modalities: {list(reference_modalities)}). A reference cannot map a modality "
            f"it never saw: drop them (`mdata.mod.pop({unknown[0]!r})`) or train a reference "
            "that has them."
        )


def _report(m: str, missing: pd.Index, n_reference: int, what: str) -> str:
    return (
        f"Modality {m!r}: the query lacks {len(missing)} of the reference's {n_reference} "
        f"features (e.g. {missing[:5].tolist()}); {what}"
    )


def order_mudata_features(
    mdata: MuData,
    reference_features: Mapping[str, Sequence[str]],
    inplace: bool = True,
    missing_features: MissingFeatures = "raise",
) -> MuData | None:
    """Order each modality's features like the reference's; see ``MosaicVI.prepare_query_mudata``.

    Features the reference does not have are dropped (with a log message). Reference features
    the query lacks are handled by ``missing_features``: ``"raise"`` (a ValueError naming them),
    ``"unmeasured"`` (the modality is removed from the query, so its cells count as not having
    measured it: never a zero that was not observed) or ``"zeros"`` (padded with zeros, marked
    ``True`` in ``var["mosaicvi_padded"]`` and warned about: the model reads them as measured
    zeros, as scvi-tools' ``prepare_query_mudata`` does).
    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"prepare_query_mudata needs a MuData, got a {type(mdata).__name__}.")
    if missing_features not in ("raise", "unmeasured", "zeros"):
        raise ValueError(
            f"`missing_features` is {missing_features!r}; use one of 'raise', 'unmeasured', "
            "'zeros'."
        )
    check_known_modalities(mdata, list(reference_features))
    new_mods, dropped = {}, []
    for m, adata in mdata.mod.items():
        reference = pd.Index(reference_features[m]).astype(str)
        names = adata.var_names.astype(str)
        if not names.is_unique:
            raise ValueError(f"mdata.mod[{m!r}].var_names has duplicates; make them unique.")
        if len(names.intersection(reference)) == 0:
            raise ValueError(
                f"Modality {m!r} of the query shares no feature with the reference's "
                f"(e.g. reference: {reference[:3].tolist()}, query: {names[:3].tolist()})."
            )
        extra = names.difference(reference)
        if len(extra):
            logger.info(
                "Modality %r: %d query features not in the reference dropped.", m, len(extra)
            )
        missing = reference.difference(names)
        if len(missing) and missing_features == "raise":
            raise ValueError(
                _report(m, missing, len(reference), "they would be read as measured zeros.")
                + " Pass `missing_features='unmeasured'` to treat the modality as not measured "
                "in these cells, or `missing_features='zeros'` to pad them with zeros as "
                "scvi-tools does."
            )
        if len(missing) and missing_features == "unmeasured":
            warnings.warn(
                _report(m, missing, len(reference), "the modality is removed from the query."),
                UserWarning,
                stacklevel=3,
            )
            dropped.append(m)
            continue
        new_mods[m] = _padded(adata, reference, missing, m) if len(missing) else None
    if not [m for m in mdata.mod if m not in dropped]:
        raise ValueError("No modality of the query is left; it has nothing the reference reads.")
    result = _reordered(mdata, reference_features, new_mods, dropped)
    if not inplace:
        return result
    for m in list(mdata.mod):
        if m in dropped:
            del mdata.mod[m]
        else:
            mdata.mod[m] = result.mod[m]
    mdata.update()
    return None


def _padded(adata: AnnData, reference: pd.Index, missing: pd.Index, m: str) -> AnnData:
    warnings.warn(
        _report(
            m,
            missing,
            len(reference),
            "padded with zeros, which the model reads as measured zeros (marked in "
            f"var[{PADDED_VAR_KEY!r}]).",
        ),
        UserWarning,
        stacklevel=4,
    )
    zeros = sp.csr_matrix((adata.n_obs, len(missing)), dtype=np.float32)
    pad = ad.AnnData(
        X=zeros, layers={k: zeros.copy() for k in layer_names(adata)}, obs=adata.obs[[]].copy()
    )
    pad.var_names = missing
    out = ad.concat([adata, pad], axis=1, join="outer", merge="first", index_unique=None)
    out.obs = adata.obs.copy()
    out.var[PADDED_VAR_KEY] = out.var_names.isin(missing)
    return out


def _reordered(mdata, reference_features, new_mods, dropped) -> MuData:
    mods = {}
    for m, adata in mdata.mod.items():
        if m in dropped:
            continue
        source = new_mods.get(m) if new_mods.get(m) is not None else adata
        mods[m] = source[:, pd.Index(reference_features[m])].copy()
    result = MuData(mods)
    result.obs = mdata.obs.loc[result.obs_names].copy()
    return result


def order_anndata_features(
    adata: AnnData,
    reference_features: Mapping[str, Sequence[str]],
    setup_method: str,
    inplace: bool = True,
    missing_features: MissingFeatures = "raise",
) -> AnnData | None:
    """Order an AnnData's features like a reference set up with ``setup_anndata``.

    The reference's features of every modality, concatenated in model order, are the target;
    ``missing_features`` as in :func:`prepare_query_mudata` (``"unmeasured"`` is not possible
    for one matrix).
    """
    if setup_method != "setup_anndata":
        raise ValueError(
            "The reference was set up with `setup_mudata`; wrap the query in a MuData named like "
            "its modalities (`mudata.MuData({'rna': adata})`) and call `prepare_query_mudata`."
        )
    if missing_features == "unmeasured":
        raise ValueError("`missing_features='unmeasured'` needs a MuData query.")
    reference = pd.Index(np.concatenate([np.asarray(v) for v in reference_features.values()]))
    missing = reference.difference(adata.var_names)
    if len(missing) and missing_features == "raise":
        raise ValueError(
            _report("all", missing, len(reference), "pass `missing_features='zeros'` to pad.")
        )
    out = _padded(adata, reference, missing, "all") if len(missing) else adata
    out = out[:, reference].copy()
    if not inplace:
        return out
    adata._init_as_actual(out)
    return None


def reference_feature_names(cls, reference: MosaicVI | str | os.PathLike) -> dict[str, list]:
    """Feature names of each modality of a reference model (or of its saved files)."""
    registry = (
        reference.adata_manager.registry
        if isinstance(reference, cls)
        else load_registry(reference)
    )
    return {m: list(names) for m, names in registry[FEATURE_NAMES_REGISTRY_KEY].items()}


def prepare_query_mudata(
    cls,
    mdata: MuData,
    reference: MosaicVI | str | os.PathLike,
    return_reference_var_names: bool = False,
    inplace: bool = True,
    missing_features: MissingFeatures = "raise",
) -> MuData | dict[str, pd.Index] | None:
    """Order (and if asked, pad) each modality of a query like the reference's features.

    scvi-tools' ``prepare_query_mudata`` for a mosaic reference: the query may hold any subset of
    the reference's modalities; a modality the reference never saw is refused. Features the
    reference does not have are dropped. Reference features the query lacks are never filled
    silently with zeros the model would read as measured.

    Parameters
    ----------
    mdata
        The query: a MuData with modalities named like the reference's.
    reference
        A trained model, or the directory it was saved to.
    return_reference_var_names
        Only return the reference's feature names (modality -> ``pd.Index``).
    inplace
        Replace the query's modalities (``True``) or return a new MuData.
    missing_features
        What to do with reference features a query modality lacks: ``"raise"`` (default, a
        ``ValueError`` naming how many and which), ``"unmeasured"`` (drop that modality from the
        query, with a warning: its cells count as not having measured it, the honest choice
        when a panel differs) or ``"zeros"`` (pad with zeros, marked in
        ``var["mosaicvi_padded"]``, with a warning: the model reads them as measured zeros, as
        scvi-tools does; use only when few features are missing).

    Returns
    -------
    The prepared MuData when ``inplace=False``, the feature names with
    ``return_reference_var_names``, else ``None``.
    """
    names = reference_feature_names(cls, reference)
    if return_reference_var_names:
        return {m: pd.Index(v) for m, v in names.items()}
    return order_mudata_features(mdata, names, inplace, missing_features)


def prepare_query_anndata(
    cls,
    adata: AnnData,
    reference: MosaicVI | str | os.PathLike,
    return_reference_var_names: bool = False,
    inplace: bool = True,
    missing_features: MissingFeatures = "raise",
) -> AnnData | pd.Index | None:
    """Order (and if asked, pad) a query AnnData like a reference set up with ``setup_anndata``.

    Parameters
    ----------
    adata
        The query, with the features of every modality of the reference in ``var``.
    reference
        A trained model set up with ``setup_anndata``, or the directory it was saved to. For a
        reference set up with ``setup_mudata``, wrap the query in a MuData and use
        :meth:`prepare_query_mudata`.
    return_reference_var_names
        Only return the reference's feature names, concatenated in model order.
    inplace
        Rewrite ``adata`` (``True``) or return a new AnnData.
    missing_features
        ``"raise"`` (default) or ``"zeros"``, as in :meth:`prepare_query_mudata`.
    """
    names = reference_feature_names(cls, reference)
    if return_reference_var_names:
        return pd.Index(np.concatenate([np.asarray(v) for v in names.values()]))
    registry = (
        reference.adata_manager.registry
        if isinstance(reference, cls)
        else load_registry(reference)
    )
    return order_anndata_features(
        adata, names, registry["setup_method_name"], inplace, missing_features
    )
