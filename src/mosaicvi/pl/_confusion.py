"""Predicted against true labels (label transfer, e.g. of a query mapped onto a reference)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes


def _labels(values: pd.Series | Sequence | np.ndarray, name: str) -> pd.Series:
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if series.isna().any():
        raise ValueError(f"`{name}` is missing for {int(series.isna().sum())} cells.")
    return series


def _order(truth: pd.Series, predicted: pd.Series) -> list[str]:
    """Categories of ``predicted`` (the model's classes), then of ``truth``, then the rest."""
    order: list[str] = []
    for series in (predicted, truth):
        if isinstance(series.dtype, pd.CategoricalDtype):
            order += [str(c) for c in series.cat.categories if str(c) not in order]
    seen = set(truth.astype(str)) | set(predicted.astype(str))
    order = [c for c in order if c in seen]
    return order + sorted(seen.difference(order))


def confusion_matrix(
    truth: pd.Series | Sequence | np.ndarray,
    predicted: pd.Series | Sequence | np.ndarray,
    normalize: Literal["true"] | None = "true",
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Heatmap of true (rows) against predicted (columns) labels.

    Rows and columns hold every label in either, in the order of ``predicted``'s categories
    (as :meth:`mosaicvi.MosaicVI.predict` returns them: the model's classes), then ``truth``'s,
    then any other label sorted. Each row's tick label gives its number of cells.

    Parameters
    ----------
    truth
        True label of each cell.
    predicted
        Predicted label of each cell, e.g. ``model.predict()``. Two Series are aligned by
        index; otherwise the two must have one entry per cell, in the same order.
    normalize
        ``"true"`` (default): each row sums to 1, the share of a true label's cells given each
        predicted label (its diagonal entry is that label's recall; their mean is the balanced
        accuracy). ``None``: cell counts.
    ax
        Axes to draw on (default: a new figure).
    show
        Show the figure (default: when not given an ``ax``).

    Returns
    -------
    The Axes (``None`` when shown, as scanpy): rows the true labels, columns the predicted ones,
    the matrix as its image, a colour bar.

    Examples
    --------
    >>> import mosaicvi
    >>> truth = ["B", "B", "T", "T"]
    >>> predicted = ["B", "T", "T", "T"]
    >>> ax = mosaicvi.pl.confusion_matrix(truth, predicted, show=False)
    >>> ax.get_images()[0].get_array().tolist()
    [[0.5, 0.5], [0.0, 1.0]]
    """
    import matplotlib.pyplot as plt

    if normalize not in ("true", None):
        raise ValueError(f"`normalize` must be 'true' or None, got {normalize!r}.")
    by_name = isinstance(truth, pd.Series) and isinstance(predicted, pd.Series)
    truth, predicted = _labels(truth, "truth"), _labels(predicted, "predicted")
    if len(truth) != len(predicted):
        raise ValueError(
            f"`truth` has {len(truth)} cells and `predicted` {len(predicted)}; give one label "
            "per cell to each (or two Series indexed by the same cell names)."
        )
    if by_name and predicted.index.is_unique and truth.index.isin(predicted.index).all():
        predicted = predicted.loc[truth.index]
    order = _order(truth, predicted)
    table = pd.crosstab(
        pd.Categorical(truth.astype(str).to_numpy(), categories=order),
        pd.Categorical(predicted.astype(str).to_numpy(), categories=order),
        dropna=False,
    ).to_numpy(dtype=float)
    counts = table.sum(axis=1)
    values = table / np.maximum(counts, 1)[:, None] if normalize == "true" else table
    if ax is None:
        size = max(3.5, 0.3 * len(order) + 1.5)
        _, ax = plt.subplots(figsize=(size + 1.0, size))
        show = True if show is None else show
    image = ax.imshow(values, cmap="Blues", vmin=0, aspect="auto")
    ax.figure.colorbar(image, ax=ax, label="share of the true label" if normalize else "cells")
    ax.set_xticks(np.arange(len(order)), order, rotation=90)
    ax.set_yticks(
        np.arange(len(order)), [f"{c} ({int(n)})" for c, n in zip(order, counts, strict=True)]
    )
    ax.grid(False)  # scanpy's figure style draws a grid over the image
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (cells)")
    if show:
        plt.show()
        return None
    return ax
