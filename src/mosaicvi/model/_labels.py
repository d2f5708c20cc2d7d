"""Label classes, predicted labels and cluster probabilities of a trained MosaicVI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scvi import REGISTRY_KEYS

from mosaicvi.model._checks import selected_obs_names
from mosaicvi.model._inference import cells_loader, class_probabilities

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scvi.data import AnnDataManager


def label_classes(manager: AnnDataManager) -> list[str]:
    """The label classes of the data set up in ``manager`` (empty without ``unlabeled_category``)."""
    state = manager.get_state_registry(REGISTRY_KEYS.LABELS_KEY)
    if "unlabeled_category" not in state:
        return []
    return [str(c) for c in state.categorical_mapping[:-1]]


def check_labelled(classes: list[str]) -> list[str]:
    """``classes``, if there are any; a ValueError saying how to train with labels otherwise."""
    if not classes:
        raise ValueError(
            "`predict` needs a model trained with labels: set the data up with `labels_key` "
            "and `unlabeled_category` (the value of unlabelled cells), then train a new model."
        )
    return classes


def predictions(
    probabilities: np.ndarray, classes: list[str], obs_names: pd.Index, soft: bool
) -> pd.Series | pd.DataFrame:
    """Most probable class of each cell (or, with ``soft``, the probability of every class).

    Parameters
    ----------
    probabilities
        Class (or cluster) probabilities ``(n_cells, n_classes + extra clusters)``; the first
        ``len(classes)`` columns are the classes, renormalised here.
    classes
        The label classes.
    obs_names
        The cells' names.
    soft
        Return the probabilities.
    """
    probabilities = probabilities[:, : len(classes)]
    probabilities = probabilities / probabilities.sum(1, keepdims=True)
    if soft:
        return pd.DataFrame(probabilities, index=obs_names, columns=classes)
    predicted = np.asarray(classes, dtype=object)[probabilities.argmax(1)]
    return pd.Series(
        pd.Categorical(predicted, categories=classes), index=obs_names, name="prediction"
    )


def check_mixture_prior(prior_name: str) -> None:
    """Refuse cluster probabilities of a model without the mixture prior."""
    if prior_name != "mixture":
        raise ValueError(
            "Cluster probabilities come from the mixture prior; create the model with "
            "`MosaicVI(mdata, prior='mixture', n_clusters=...)`."
        )


def cluster_frame(
    probabilities: np.ndarray, classes: list[str], obs_names: pd.Index
) -> pd.DataFrame:
    """Cluster probabilities named after the label classes, then ``cluster_<k>``."""
    columns = classes + [f"cluster_{k}" for k in range(len(classes), probabilities.shape[1])]
    return pd.DataFrame(probabilities, index=obs_names, columns=columns)


def model_predictions(
    model,
    adata,
    indices: Sequence[int] | None,
    soft: bool,
    batch_size: int | None,
    clusters: bool = False,
) -> pd.Series | pd.DataFrame:
    """:meth:`mosaicvi.MosaicVI.predict`, or with ``clusters`` ``get_cluster_probabilities``.

    The class (cluster) probabilities are read at each cell's posterior mean.
    """
    classes = model.label_classes if clusters else check_labelled(model.label_classes)
    adata, loader = cells_loader(model, adata, indices, batch_size)
    probabilities = class_probabilities(model.module, loader)
    obs_names = selected_obs_names(adata.obs_names, indices)
    if clusters:
        return cluster_frame(probabilities, classes, obs_names)
    return predictions(probabilities, classes, obs_names, soft)
