"""Heatmap of each group's top differential features across modalities."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mosaicvi.model._rank_groups_layout import effect_column

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from matplotlib.axes import Axes


def top_features(result: pd.DataFrame, group: str, n_features: int) -> list[str]:
    """The ``n_features`` features most confidently higher in ``group`` than in the rest.

    Ranked by ``proba_de`` (``bayes_factor`` in vanilla mode), then the effect (``effect`` of the
    population test, else ``lfc_mean``), among features with a positive effect.
    """
    block = result[result["group1"].astype(str) == str(group)]
    if "proba_de" in block.columns:
        effect = effect_column(block)
        up = block[block[effect] > 0]
        ranked = up.sort_values(["proba_de", effect], ascending=False)
    else:
        ranked = block.sort_values("bayes_factor", ascending=False)
    return list(ranked.index[:n_features])


def differential_heatmap(
    results: Mapping[str, pd.DataFrame],
    n_features: int = 5,
    groups: Sequence[str] | None = None,
    cmap: str = "RdBu_r",
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Each group's top features of every modality, as a groups x features heatmap.

    For every modality and group, the ``n_features`` features most confidently higher in that
    group (:func:`top_features`) become columns; cells show each group's decoded value
    (``scale1`` of its one-vs-rest comparison), standardised per column across groups so that
    genes, peaks and proteins share one colour scale.

    Parameters
    ----------
    results
        Modality name -> one-vs-rest result of :meth:`mosaicvi.MosaicVI.differential_features`
        (``group1=None``, ``group2=None``).
    n_features
        Top features per group and modality.
    groups
        Groups (rows) to show, in order (default: all, in the order of the first result).
    cmap
        Matplotlib colormap.
    ax
        Axes to draw on (default: a new figure sized to the table).
    show
        Show the figure (default: when not given an ``ax``, as scanpy does in interactive use).

    Returns
    -------
    The Axes (``None`` when shown, as scanpy and the other plots here), with x tick labels
    ``"<modality>:<feature>"`` and y tick labels the groups.

    Examples
    --------
    >>> results = {
    ...     m: model.differential_features("cell_type", m, key_added=None) for m in ("rna", "atac")
    ... }  # doctest: +SKIP
    >>> mosaicvi.pl.differential_heatmap(results, n_features=3)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("`results` is empty; pass {modality: differential_features(...)}.")
    first = next(iter(results.values()))
    groups = list(dict.fromkeys(first["group1"].astype(str))) if groups is None else list(groups)
    columns, labels, boundaries = [], [], []
    for modality, result in results.items():
        if (result["group2"].astype(str) != "rest").any():
            raise ValueError(
                f"The result for {modality!r} is not one-vs-rest; call differential_features "
                "with group1=None and group2=None."
            )
        scale = result.reset_index(names="feature").pivot_table(
            index="group1", columns="feature", values="scale1", observed=True
        )
        missing = [g for g in groups if g not in scale.index.astype(str)]
        if missing:
            raise ValueError(f"Groups {missing} are not in the result for {modality!r}.")
        scale.index = scale.index.astype(str)
        chosen = list(
            dict.fromkeys(f for g in groups for f in top_features(result, g, n_features))
        )
        columns.append(scale.loc[groups, chosen].to_numpy(dtype=float))
        labels += [f"{modality}:{f}" for f in chosen]
        boundaries.append(len(labels))
    values = np.concatenate(columns, axis=1)
    spread = values.std(0)
    values = (values - values.mean(0)) / np.where(spread > 0, spread, 1.0)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.25 * len(labels) + 2), 0.3 * len(groups) + 2))
        show = True if show is None else show
    image = ax.imshow(values, aspect="auto", cmap=cmap, vmin=-2.5, vmax=2.5, interpolation="none")
    ax.set_xticks(np.arange(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(np.arange(len(groups)), groups)
    for boundary in boundaries[:-1]:
        ax.axvline(boundary - 0.5, color="black", linewidth=1)
    ax.figure.colorbar(image, ax=ax, label="decoded value (z-score across groups)", shrink=0.6)
    if show:
        plt.show()
        return None
    return ax
