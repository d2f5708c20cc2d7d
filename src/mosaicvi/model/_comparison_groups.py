"""Which cells form each comparison of a differential test: groups of a column, or chosen cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mudata import MuData

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData


def group_comparisons(
    adata: MuData | AnnData,
    groupby: str,
    group1: str | Sequence[str] | None,
    group2: str | None,
) -> tuple[pd.Series, list[tuple[str, np.ndarray, np.ndarray]], str]:
    """Group labels, ``(group1, mask1, mask2)`` per comparison, and the reference's name."""
    if groupby not in adata.obs.columns:
        hint = (
            " (`mdata.pull_obs()` copies the modalities' columns)"
            if isinstance(adata, MuData)
            else ""
        )
        raise ValueError(
            f"`groupby` {groupby!r} is not a column of the data's obs{hint}; columns: "
            f"{list(adata.obs.columns)}."
        )
    labels = adata.obs[groupby]
    known = labels.notna().to_numpy()
    text = labels.astype(str)
    categories = list(pd.unique(text[known]))
    if isinstance(labels.dtype, pd.CategoricalDtype):
        present = set(categories)
        categories = [str(c) for c in labels.cat.categories if str(c) in present]
    if group1 is None:
        chosen = categories
        if len(chosen) < 2:
            raise ValueError(f"`groupby` {groupby!r} has fewer than two groups: {chosen}.")
    else:
        chosen = [group1] if isinstance(group1, str) else [str(g) for g in group1]
    for group in [*chosen, *([] if group2 is None else [group2])]:
        if str(group) not in categories:
            raise ValueError(
                f"Group {group!r} is not in column {groupby!r}; groups: {categories}."
            )
    comparisons = []
    for g1 in chosen:
        idx1 = (text == str(g1)).to_numpy() & known
        idx2 = (text == str(group2)).to_numpy() if group2 is not None else known & ~idx1
        if g1 == group2:
            raise ValueError(f"`group1` and `group2` are both {group2!r}.")
        if not idx2.any():
            raise ValueError(f"No cell left to compare group {g1!r} with.")
        comparisons.append((str(g1), idx1, idx2))
    return labels, comparisons, "rest" if group2 is None else str(group2)


def index_comparison(
    adata: MuData | AnnData,
    idx1: Sequence[int] | Sequence[bool] | str,
    idx2: Sequence[int] | Sequence[bool] | str | None,
) -> tuple[pd.Series, list[tuple[str, np.ndarray, np.ndarray]], str]:
    """The comparison of the cells ``idx1`` with ``idx2`` (or all others), as scvi-tools' idx1/idx2.

    Each is a boolean mask over the cells, their positions, or a query of ``obs``
    (``"cell_type == 'Ast'"``). The groups are named ``"idx1"`` and ``"idx2"`` (``"rest"``).
    """
    cells1 = cell_mask(adata, idx1, "idx1")
    cells2 = ~cells1 if idx2 is None else cell_mask(adata, idx2, "idx2")
    for name, cells in (("idx1", cells1), ("idx2", cells2)):
        if not cells.any():
            raise ValueError(f"`{name}` selects no cell; give a non-empty selection.")
    reference = "rest" if idx2 is None else "idx2"
    labels = pd.Series(np.where(cells1, "idx1", reference), index=adata.obs_names)
    return labels, [("idx1", cells1, cells2)], reference


def cell_mask(
    adata: MuData | AnnData, selection: Sequence[int] | Sequence[bool] | str, name: str
) -> np.ndarray:
    """Boolean mask over ``adata``'s cells of a mask, positions or an ``obs`` query."""
    if isinstance(selection, str):
        try:
            chosen = adata.obs.query(selection).index
        except Exception as error:
            raise ValueError(
                f"`{name}` {selection!r} is not a valid query of obs ({error}); e.g. "
                f"\"cell_type == 'Ast'\". Columns: {list(adata.obs.columns)}."
            ) from error
        return adata.obs_names.isin(chosen)
    values = np.asarray(selection).ravel()
    if values.dtype == bool:
        if len(values) != adata.n_obs:
            raise ValueError(
                f"`{name}` is a boolean mask of {len(values)} entries; the data has "
                f"{adata.n_obs} cells."
            )
        return values
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(
            f"`{name}` must be a boolean mask, cell positions or an obs query string; got "
            f"values of type {values.dtype}."
        )
    if values.size and (values.min() < -adata.n_obs or values.max() >= adata.n_obs):
        raise ValueError(f"`{name}` has positions outside the {adata.n_obs} cells.")
    mask = np.zeros(adata.n_obs, dtype=bool)
    mask[values] = True
    return mask
