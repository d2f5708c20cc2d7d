"""Which modalities each batch measured: a small table-like heatmap."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mudata import MuData

from mosaicvi.pl._groups import aligned_groups

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def presence_table(mdata: MuData, groupby: str = "batch") -> pd.DataFrame:
    """Number of cells of each group (rows) that measured each modality (columns).

    A cell measured a modality when it is among that modality's cells (``mdata.mod[m]``),
    whatever its counts, as ``setup_mudata`` defines presence. The last column, ``cells``,
    holds each group's number of cells.
    """
    if not isinstance(mdata, MuData):
        raise TypeError(
            f"`mdata` must be a MuData, got {type(mdata).__name__}; for one AnnData every cell "
            "measured every modality."
        )
    if groupby not in mdata.obs.columns:
        # The column may live in the modalities only: mudata >= 0.4 no longer pulls their obs
        # columns into mdata.obs when a MuData is built (mudata 0.3 did, as "<mod>:<column>").
        hint = [c for c in mdata.obs.columns if c.endswith(f":{groupby}")] or [
            m for m, mod in mdata.mod.items() if groupby in mod.obs.columns
        ]
        fix = (
            f"pull it with mdata.pull_obs({groupby!r}) or run setup_mudata(batch_key={groupby!r})"
            if hint
            else f"choose one of {list(mdata.obs.columns)}"
        )
        raise KeyError(f"`groupby`={groupby!r} is not a column of mdata.obs; {fix}.")
    presence = pd.DataFrame(
        {m: mdata.obs_names.isin(mod.obs_names) for m, mod in mdata.mod.items()},
        index=mdata.obs_names,
    )
    group = aligned_groups(presence, mdata.obs[groupby], "groupby")
    table = presence.groupby(group, observed=True).sum()
    table["cells"] = group.value_counts().reindex(table.index).to_numpy()
    table.index.name = groupby
    return table


def modality_presence(
    mdata: MuData,
    groupby: str = "batch",
    cmap: str = "Blues",
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Heatmap of the fraction of each group's cells that measured each modality.

    Rows are the groups (e.g. batches), columns the modalities; each cell of the table shows
    the number of cells that measured the modality and is coloured by their fraction of the
    group, so RNA-only, ATAC-only and paired batches stand out at a glance.

    Parameters
    ----------
    mdata
        The (unpaired) MuData, before or after ``setup_mudata``.
    groupby
        Column of ``mdata.obs`` to group the cells by.
    cmap
        Matplotlib colormap (fraction 0 to 1).
    ax
        Axes to draw on (default: a new figure sized to the table).
    show
        Show the figure (default: when not given an ``ax``).

    Returns
    -------
    The Axes (``None`` when shown, as scanpy): y tick labels the groups, x tick labels the
    modalities.

    Examples
    --------
    >>> import anndata as ad
    >>> import mudata
    >>> import numpy as np
    >>> import pandas as pd
    >>> import mosaicvi
    >>> rna = ad.AnnData(np.ones((3, 2)), obs=pd.DataFrame(index=["c1", "c2", "c3"]))
    >>> atac = ad.AnnData(np.ones((2, 4)), obs=pd.DataFrame(index=["c3", "c4"]))
    >>> mdata = mudata.MuData({"rna": rna, "atac": atac})
    >>> mdata.obs["batch"] = ["s1", "s1", "s2", "s2"]
    >>> mosaicvi.pl.presence_table(mdata)
           rna  atac  cells
    batch
    s1       2     0      2
    s2       1     2      2
    >>> ax = mosaicvi.pl.modality_presence(mdata, show=False)
    """
    import matplotlib.pyplot as plt

    table = presence_table(mdata, groupby)
    counts = table.drop(columns="cells")
    fraction = counts.to_numpy(dtype=float) / table[["cells"]].to_numpy(dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * counts.shape[1] + 2.2, 0.32 * counts.shape[0] + 1.4))
        show = True if show is None else show
    ax.imshow(fraction, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="none")
    for (i, j), n in np.ndenumerate(counts.to_numpy()):
        ax.text(
            j,
            i,
            f"{n:,}",
            ha="center",
            va="center",
            fontsize="small",
            color="white" if fraction[i, j] > 0.6 else "black",
        )
    ax.set_xticks(np.arange(counts.shape[1]), list(counts.columns))
    ax.set_yticks(np.arange(counts.shape[0]), [str(g) for g in counts.index])
    ax.xaxis.tick_top()
    ax.set_ylabel(groupby)
    ax.set_title("cells that measured each modality", fontsize="medium", pad=20)
    if show:
        plt.show()
        return None
    return ax
