"""Checks of the arguments of :class:`~mosaicvi.MosaicVI`'s outputs, with explicit inputs.

Each function reads only what it is given (the data manager, the modality names, the module),
so the model's public methods and the algorithm functions share one definition of each check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scvi import REGISTRY_KEYS

from mosaicvi._constants import PRESENCE_KEY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scvi.data import AnnDataManager


def check_modality(modality: str | None, modality_names: Sequence[str]) -> str:
    """``modality``, if it is one of ``modality_names``; else a ValueError listing them."""
    names = list(modality_names)
    if modality is None or modality not in names:
        raise ValueError(
            f"`modality` must be one of the model's modalities {names}; got {modality!r}."
        )
    return modality


def modality_mask(modalities: str | Sequence[str], modality_names: Sequence[str]) -> torch.Tensor:
    """Boolean mask over ``modality_names`` of the chosen ``modalities`` (a name or names)."""
    names = list(modality_names)
    if isinstance(modalities, str):
        modalities = [modalities]
    unknown = [m for m in modalities if m not in names]
    if unknown or not modalities:
        raise ValueError(f"`modalities` must name some of {names}; got {list(modalities)}.")
    return torch.tensor([m in modalities for m in names])


def encoding_mask(
    manager: AnnDataManager,
    indices: Sequence[int] | None,
    modalities: str | Sequence[str],
    modality_names: Sequence[str],
) -> torch.Tensor:
    """Mask of the ``modalities`` to encode from; refuses cells that measured none of them.

    Parameters
    ----------
    manager
        Data manager of the data the cells come from.
    indices
        The selected cells (``None``: all).
    modalities
        The modalities to encode from.
    modality_names
        The model's modalities, in model order.
    """
    keep = modality_mask(modalities, modality_names)
    presence = np.asarray(manager.get_from_registry(PRESENCE_KEY), dtype=bool)
    chosen = presence if indices is None else presence[np.asarray(indices)]
    empty = ~(chosen & keep.numpy()).any(axis=1)
    if empty.any():
        raise ValueError(
            f"{int(empty.sum())} of the selected cells measured none of {list(modalities)}; "
            "select cells that did with `indices`."
        )
    return keep


def batch_categories(manager: AnnDataManager) -> np.ndarray:
    """The batch categories of the model's data, in code order."""
    state = manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY)
    return np.asarray(state.categorical_mapping)


def measuring_batch_codes(
    manager: AnnDataManager, modality: str, modality_names: Sequence[str]
) -> list[int]:
    """Codes of the training batches with at least one cell that measured ``modality``."""
    column = list(modality_names).index(modality)
    presence = np.asarray(manager.get_from_registry(PRESENCE_KEY), dtype=bool)
    batch = np.asarray(manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
    return sorted(int(b) for b in np.unique(batch[presence[:, column]]))


def measuring_batch_names(
    manager: AnnDataManager, modality: str, modality_names: Sequence[str]
) -> list[str]:
    """Names of the training batches with a cell that measured ``modality``, in code order."""
    categories = batch_categories(manager)
    return [str(categories[c]) for c in measuring_batch_codes(manager, modality, modality_names)]


def transform_batch_codes(
    manager: AnnDataManager,
    modality: str,
    modality_names: Sequence[str],
    transform_batch: str | Sequence[str] | None,
) -> list[int] | None:
    """Codes of the batches to decode into; refuses batches that never measured ``modality``."""
    if transform_batch is None:
        return None
    chosen = (
        [transform_batch]
        if isinstance(transform_batch, str) or np.ndim(transform_batch) == 0
        else list(transform_batch)
    )
    if not chosen:
        raise ValueError("`transform_batch` is an empty list; give batch names or None.")
    categories = batch_categories(manager)
    measured = measuring_batch_codes(manager, modality, modality_names)
    allowed = [str(categories[c]) for c in measured]
    codes = []
    for batch in chosen:
        where = np.flatnonzero(categories.astype(str) == str(batch))
        if len(where) == 0:
            raise ValueError(
                f"`transform_batch` {batch!r} is not a batch of the model; batches: "
                f"{[str(c) for c in categories]}."
            )
        if int(where[0]) not in measured:
            raise ValueError(
                f"`transform_batch` {batch!r} never measured {modality!r}, so the model has no "
                f"trained {modality!r} decoder parameters for it. Decode into a batch that "
                f"measured {modality!r}: {allowed} (or use transform_batch=None)."
            )
        codes.append(int(where[0]))
    return codes


def decoding_library(module, modality: str, library_size: float | str | None) -> float:
    """The library size ``modality`` is decoded at (see ``get_normalized_expression``)."""
    reference = float(torch.exp(module.decoders[modality].log_library_reference))
    if library_size is None:
        return module.likelihoods[modality].default_decoding_library(reference)
    if isinstance(library_size, str):
        if library_size == "cell":
            raise ValueError(
                "`library_size='cell'` (each cell's own library) applies to per-cell outputs "
                "(get_normalized_expression, get_imputed, posterior_predictive_sample); here give "
                "a positive number, 'median' or None."
            )
        if library_size != "median":
            raise ValueError(
                f"`library_size` must be a positive number, 'median', 'cell' or None; got "
                f"{library_size!r}."
            )
        return reference
    if not np.isfinite(library_size) or library_size <= 0:
        raise ValueError(f"`library_size` must be a positive number, got {library_size}.")
    return float(library_size)


def chosen_features(
    feature_list: str | Sequence[str] | None, gene_list: str | Sequence[str] | None
) -> str | Sequence[str] | None:
    """``feature_list``, or scvi-tools' name for it, ``gene_list`` (not both)."""
    if gene_list is None:
        return feature_list
    if feature_list is not None:
        raise ValueError("Give `feature_list` or `gene_list` (scvi-tools' name for it), not both.")
    return gene_list


def feature_columns(names, modality: str, feature_list: str | Sequence[str] | None) -> np.ndarray:
    """Positions of ``feature_list`` among ``names`` (the features of ``modality``)."""
    if feature_list is None:
        return np.arange(len(names))
    if isinstance(feature_list, str):
        feature_list = [feature_list]
    positions = names.get_indexer(list(feature_list))
    if (positions < 0).any():
        missing = [f for f, p in zip(feature_list, positions, strict=True) if p < 0][:5]
        raise ValueError(f"`feature_list` names features not in {modality!r}: {missing}.")
    return positions


def selected_obs_names(obs_names, indices: Sequence[int] | None):
    """``obs_names`` of the selected cells (all of them when ``indices`` is ``None``)."""
    return obs_names if indices is None else obs_names[np.asarray(indices)]
