"""Imputed features on an embedding: the cells that measured the modality beside those that did not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from mosaicvi.model._imputation import MEASURED_OBS_KEY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData
    from matplotlib.figure import Figure


def imputed_features(
    imputed: AnnData,
    features: str | Sequence[str],
    basis: str = "umap",
    cmap: str = "viridis",
    point_size: float | None = None,
    show: bool | None = None,
) -> Figure | None:
    """Each feature on an embedding, measured cells and imputed cells in panels side by side.

    One row per feature: on the left the cells that measured the modality (their denoised
    values), on the right the cells whose values are imputed, on one colour scale per feature,
    over the other cells in light grey. If the integration is right, a marker lights up the same
    region in both panels.

    Parameters
    ----------
    imputed
        The result of :meth:`mosaicvi.MosaicVI.get_imputed` (with ``obs["measured"]``), whose
        ``obsm`` holds the embedding (e.g. after ``sc.tl.umap(mdata)`` on the model's data).
    features
        Feature name(s) of ``imputed.var_names``.
    basis
        Embedding to draw: ``obsm[f"X_{basis}"]`` (first two columns).
    cmap
        Matplotlib colormap.
    point_size
        Marker size (default: scaled to the number of cells, as scanpy).
    show
        Show the figure (default: True, as scanpy does in interactive use).

    Returns
    -------
    The Figure (``None`` when shown, as scanpy); panels are titled ``"<feature>, measured"`` and
    ``"<feature>, imputed"``.

    Examples
    --------
    >>> atac = model.get_imputed("atac")  # doctest: +SKIP
    >>> mosaicvi.pl.imputed_features(atac, ["chr2:1000-1500", "chr7:200-700"])  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    features = [features] if isinstance(features, str) else list(features)
    unknown = [f for f in features if f not in imputed.var_names]
    if not features or unknown:
        raise ValueError(
            f"`features` {unknown or features} are not features of the imputed data; pass names "
            f"of `imputed.var_names` (e.g. {list(imputed.var_names[:3])})."
        )
    key = f"X_{basis}"
    if key not in imputed.obsm:
        raise ValueError(
            f"The imputed data has no obsm[{key!r}]; compute the embedding on the model's data "
            f"first (e.g. `sc.tl.{basis}(mdata)`), then call `get_imputed` again. Embeddings: "
            f"{[k for k in imputed.obsm if str(k).startswith('X_')]}."
        )
    if MEASURED_OBS_KEY not in imputed.obs.columns:
        raise ValueError(
            f"`imputed` has no obs[{MEASURED_OBS_KEY!r}]; pass the result of `model.get_imputed`."
        )
    coordinates = np.asarray(imputed.obsm[key])[:, :2]
    measured = imputed.obs[MEASURED_OBS_KEY].to_numpy(dtype=bool)
    size = point_size if point_size is not None else 120000 / max(imputed.n_obs, 1)
    fig, axes = plt.subplots(
        len(features), 2, figsize=(8.5, 4 * len(features)), squeeze=False, layout="constrained"
    )
    for row, feature in zip(axes, features, strict=True):
        column = imputed[:, feature].X
        values = np.asarray(column.toarray() if sp.issparse(column) else column).ravel()
        vmin, vmax = float(values.min()), float(values.max())
        for ax, cells, kind in ((row[0], measured, "measured"), (row[1], ~measured, "imputed")):
            ax.scatter(*coordinates[~cells].T, s=size, c="lightgrey", linewidths=0)
            drawn = ax.scatter(
                *coordinates[cells].T,
                s=size,
                c=values[cells],
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
                linewidths=0,
            )
            ax.set_title(f"{feature}, {kind}")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{basis.upper()}1")
            ax.set_ylabel(f"{basis.upper()}2")
        fig.colorbar(drawn, ax=row.tolist(), shrink=0.8)
    if show is None or show:
        plt.show()
        return None
    return fig
