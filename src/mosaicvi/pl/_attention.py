"""Attention weight of each modality per batch (or any other grouping of cells)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from mosaicvi.pl._groups import aligned_groups

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes


def attention_weights(
    weights: pd.DataFrame,
    groups: pd.Series | Sequence | np.ndarray,
    kind: Literal["violin", "bar"] = "violin",
    presence: pd.DataFrame | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Distribution of each modality's weight in the cells' latent codes, per group of cells.

    For each group (x axis, e.g. batch) and modality (colour), the weights of the cells that
    measured that modality: as violins, or as bars (mean) with the standard deviation. A
    modality a group never measured leaves an empty slot; cells that did not measure a
    modality (weight 0) are never averaged in.

    Parameters
    ----------
    weights
        Cells x modalities, as returned by :meth:`mosaicvi.MosaicVI.get_attention_weights`.
    groups
        Group of each cell, e.g. ``mdata.obs["batch"]``: a Series indexed by cell name (aligned
        by name) or one value per row of ``weights``.
    kind
        ``"violin"`` or ``"bar"``.
    presence
        Cells x modalities booleans of which cell measured which modality (e.g.
        ``mdata.obsm["_mosaicvi_presence"]``). Default: a weight above 0 means measured.
    ax
        Axes to draw on (default: a new figure).
    show
        Show the figure (default: when not given an ``ax``).

    Returns
    -------
    The Axes (``None`` when shown, as scanpy): x tick labels the groups, y axis the weight
    (0-1), a legend entry per modality.

    Examples
    --------
    >>> import pandas as pd
    >>> import mosaicvi
    >>> weights = pd.DataFrame({"rna": [0.7, 1.0, 0.0], "atac": [0.3, 0.0, 1.0]})
    >>> ax = mosaicvi.pl.attention_weights(weights, ["b1", "b2", "b3"], kind="bar", show=False)
    >>> [label.get_text() for label in ax.get_xticklabels()]
    ['b1', 'b2', 'b3']
    """
    import matplotlib.pyplot as plt

    if kind not in ("violin", "bar"):
        raise ValueError(f"`kind` must be 'violin' or 'bar', got {kind!r}.")
    if not isinstance(weights, pd.DataFrame) or weights.shape[1] == 0:
        raise ValueError(
            "`weights` must be a cells x modalities DataFrame, as from "
            "model.get_attention_weights()."
        )
    values = weights.to_numpy(dtype=float)
    if np.isnan(values).any() or (values < 0).any() or (values > 1 + 1e-6).any():
        raise ValueError("`weights` must lie in [0, 1] (attention weights), without NaN.")
    if presence is None:
        measured = values > 0
    else:
        missing = [m for m in weights.columns if m not in presence.columns]
        if missing or not weights.index.isin(presence.index).all():
            raise ValueError(
                f"`presence` must have every cell and modality of `weights`; missing modalities "
                f"{missing}. Pass mdata.obsm['_mosaicvi_presence'] of the same data."
            )
        measured = presence.loc[weights.index, list(weights.columns)].to_numpy(dtype=bool)
    group = aligned_groups(weights, groups, "groups")
    names = list(group.cat.categories)
    modalities = list(weights.columns)
    codes = group.cat.codes.to_numpy()
    if ax is None:
        _, ax = plt.subplots(
            figsize=(max(4.0, 0.6 * len(names) * len(modalities) ** 0.5 + 2), 3.5)
        )
        show = True if show is None else show
    width = 0.8 / len(modalities)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, modality in enumerate(modalities):
        color = colors[j % len(colors)]
        offset = (j - (len(modalities) - 1) / 2) * width
        positions, samples = [], []
        for g in range(len(names)):
            cells = (codes == g) & measured[:, j]
            if cells.any():
                positions.append(g + offset)
                samples.append(values[cells, j])
        if not samples:
            ax.bar([], [], color=color, label=modality)  # keep a legend entry
            continue
        if kind == "bar":
            ax.bar(
                positions,
                [s.mean() for s in samples],
                width=width * 0.9,
                yerr=[s.std() for s in samples],
                color=color,
                capsize=2,
                label=modality,
            )
        else:
            parts = ax.violinplot(samples, positions=positions, widths=width * 0.9)
            for body in parts["bodies"]:
                body.set_facecolor(color)
                body.set_alpha(0.7)
            for line in ("cbars", "cmins", "cmaxes"):
                parts[line].set_color(color)
            ax.bar([], [], color=color, label=modality)
    crowded = len(names) > 6 or max(len(str(n)) for n in names) > 8
    ax.set_xticks(
        np.arange(len(names)),
        names,
        rotation=45 if crowded else 0,
        ha="right" if crowded else "center",
    )
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("attention weight")
    ax.set_xlabel(group.name if isinstance(group.name, str) else "group")
    ax.legend(title="modality", frameon=False, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    if show:
        plt.show()
        return None
    return ax
