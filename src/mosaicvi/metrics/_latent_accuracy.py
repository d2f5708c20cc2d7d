"""Latent accuracy per modality view: a linear classifier on the code from one modality alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mosaicvi.metrics._views import (
    MIN_CELLS,
    cell_labels,
    check_score,
    check_views,
    held_out_split,
    linear_classifier,
    presence,
    score,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData
    from mudata import MuData

    from mosaicvi.model import MosaicVI

#: Name of the view that encodes each cell from every modality it measured.
JOINT = "joint"


def latent_accuracy(
    model: MosaicVI,
    labels: str | Sequence,
    views: Sequence[str] | None = None,
    *,
    adata: MuData | AnnData | None = None,
    test_fraction: float = 0.5,
    metric: str = "accuracy",
    seed: int = 0,
) -> pd.DataFrame:
    """Latent accuracy of each modality view, and label transfer between views.

    A view is the latent code (posterior mean) of a cell encoded from one modality alone
    (:meth:`~mosaicvi.MosaicVI.get_latent_representation` with ``modalities=[m]``), computed for
    every cell that measured that modality, or ``"joint"``: the code from every modality the cell
    has. The cells are split at random once into a training and a test part. For every pair of
    views, a linear classifier (standardised logistic regression) is trained on the codes of one
    view's training cells and scored on the codes of the other view's test cells.

    The diagonal is MMVAE's *latent accuracy*: how much of the labels each modality alone puts
    into the latent space. Off the diagonal, the classifier crosses from one modality's codes to
    another's: high values mean the views share one latent space (with unpaired modalities, e.g.
    two ADT panels measured on different cells, this is cross-panel label transfer).

    Parameters
    ----------
    model
        A trained :class:`~mosaicvi.MosaicVI`.
    labels
        A column of the data's ``obs`` (e.g. ``"cell_type"``) or one label per cell. Cells with a
        missing label are left out.
    views
        Modalities to use as views, optionally with ``"joint"`` (default: every modality, then
        ``"joint"``).
    adata
        Data registered like the training data (default: the training data).
    test_fraction
        Fraction of the cells held out for scoring.
    metric
        ``"accuracy"`` (as MMVAE) or ``"balanced_accuracy"``.
    seed
        Seed of the split and the classifier.

    Returns
    -------
    DataFrame indexed by the view trained on (``trained on``), one column per view tested on
    (``tested on``). NaN where a view has fewer than two labelled classes to train on or fewer
    than two test cells.

    Examples
    --------
    >>> import mosaicvi
    >>> scores = mosaicvi.metrics.latent_accuracy(model, "cell_type")  # doctest: +SKIP
    >>> scores.loc["rna", "rna"], scores.loc["rna", "atac"]  # doctest: +SKIP
    (0.83, 0.71)
    """
    check_score(metric)
    data = model._validate_anndata(adata)
    views = check_views(model, views, [JOINT]) if views is not None else [*model.modalities, JOINT]
    truth = cell_labels(data, labels)
    measured = presence(model, data)
    test = held_out_split(data.n_obs, test_fraction, seed)
    labelled = np.array([t is not None for t in truth])

    codes, cells = {}, {}
    for view in views:
        has = labelled & (measured.any(axis=1) if view == JOINT else measured[view]).to_numpy()
        cells[view] = np.flatnonzero(has)
        if len(cells[view]) == 0:
            codes[view] = np.zeros((0, model.module.n_latent))
            continue
        codes[view] = model.get_latent_representation(
            data, indices=cells[view], modalities=None if view == JOINT else [view]
        )

    table = pd.DataFrame(
        np.nan,
        index=pd.Index(views, name="trained on"),
        columns=pd.Index(views, name="tested on"),
    )
    for source in views:
        train = ~test[cells[source]]
        if train.sum() < MIN_CELLS:
            continue
        classifier = linear_classifier(
            codes[source][train], truth[cells[source]][train].astype(str), seed
        )
        for target in views:
            held_out = test[cells[target]]
            table.loc[source, target] = score(
                classifier,
                codes[target][held_out],
                truth[cells[target]][held_out].astype(str),
                metric,
            )
    return table
