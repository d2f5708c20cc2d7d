"""What the coherence metrics share: labels, presence, a held-out split and a linear classifier."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mosaicvi._constants import PRESENCE_KEY, modality_registry_key

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData
    from mudata import MuData

    from mosaicvi.model import MosaicVI

SCORES = {"accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score}
#: Fewest labelled cells a classifier is trained or scored on; fewer gives NaN.
MIN_CELLS = 2


def check_score(metric: str) -> None:
    if metric not in SCORES:
        raise ValueError(f"`metric` must be one of {list(SCORES)}, not {metric!r}.")


def cell_labels(data: MuData | AnnData, labels: str | Sequence) -> np.ndarray:
    """Labels of every cell of ``data`` as strings; NaN labels become ``None`` (never scored)."""
    if isinstance(labels, str):
        if labels not in data.obs:
            raise ValueError(
                f"`labels` {labels!r} is not a column of the data's obs; columns: "
                f"{list(data.obs.columns)[:10]}. Pass a column name or one label per cell."
            )
        values = data.obs[labels]
    else:
        values = pd.Series(np.asarray(labels, dtype=object).ravel())
        if len(values) != data.n_obs:
            raise ValueError(
                f"`labels` has {len(values)} entries; the data has {data.n_obs} cells."
            )
    missing = pd.isna(values).to_numpy()
    out = values.astype(str).to_numpy(dtype=object)
    out[missing] = None
    return out


def presence(model: MosaicVI, data: MuData | AnnData) -> pd.DataFrame:
    """Cells x modalities boolean frame: which cell measured which modality."""
    manager = model.get_anndata_manager(data, required=True)
    mask = np.asarray(manager.get_from_registry(PRESENCE_KEY), dtype=bool)
    return pd.DataFrame(mask, columns=list(model.modalities))


def counts(model: MosaicVI, data: MuData | AnnData, modality: str) -> sp.csr_matrix:
    """Registered counts of ``modality`` (all cells, empty rows where it was not measured)."""
    manager = model.get_anndata_manager(data, required=True)
    return sp.csr_matrix(manager.get_from_registry(modality_registry_key(modality)))


def held_out_split(n_cells: int, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the test cells: a random ``test_fraction`` of all cells."""
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"`test_fraction` must lie strictly between 0 and 1, not {test_fraction}."
        )
    rng = np.random.default_rng(seed)
    test = np.zeros(n_cells, dtype=bool)
    test[rng.choice(n_cells, size=round(test_fraction * n_cells), replace=False)] = True
    return test


def check_views(model: MosaicVI, views: Sequence[str] | None, extra: Sequence[str]) -> list[str]:
    names = list(model.modalities)
    if views is None:
        return names
    views = [views] if isinstance(views, str) else list(views)
    unknown = [v for v in views if v not in names and v not in extra]
    if unknown or not views:
        raise ValueError(
            f"Views must name some of the model's modalities {names} (or {list(extra)}); "
            f"got {views}."
        )
    return views


def linear_classifier(features: np.ndarray, labels: np.ndarray, seed: int):
    """Standardised multinomial logistic regression; ``None`` with fewer than two classes."""
    if len(np.unique(labels)) < 2:
        return None
    classifier = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)
    )
    return classifier.fit(features, labels)


def score(classifier, features: np.ndarray, labels: np.ndarray, metric: str) -> float:
    if classifier is None or len(labels) < MIN_CELLS:
        return float("nan")
    return float(SCORES[metric](labels, classifier.predict(features)))
