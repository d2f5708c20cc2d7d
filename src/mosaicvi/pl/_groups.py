"""Aligning a per-cell grouping (batch, cell type, ...) with a cells x modalities table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Sequence


def aligned_groups(
    table: pd.DataFrame, groups: pd.Series | Sequence | np.ndarray, name: str
) -> pd.Series:
    """``groups`` as a categorical Series indexed like ``table`` (by cell name or by position).

    A Series whose index holds every cell of ``table`` is aligned by name; anything else must
    have one entry per row of ``table``. Missing groups are an error, not silently dropped.
    """
    if isinstance(groups, pd.Series) and table.index.isin(groups.index).all():
        aligned = groups.loc[table.index]
    else:
        values = np.asarray(groups)
        if values.ndim != 1 or len(values) != len(table):
            raise ValueError(
                f"`{name}` must have one entry per cell ({len(table)}), or be a Series indexed "
                f"by the cell names; got shape {values.shape}."
            )
        aligned = pd.Series(values, index=table.index)
    if aligned.isna().any():
        raise ValueError(
            f"`{name}` is missing for {int(aligned.isna().sum())} cells; fill it (e.g. with "
            "'unknown') or select the cells that have it."
        )
    if not isinstance(aligned.dtype, pd.CategoricalDtype):
        aligned = aligned.astype(str).astype("category")
    return aligned.cat.remove_unused_categories()
