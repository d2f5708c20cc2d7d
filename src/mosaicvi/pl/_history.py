"""Training curves: every loss term of ``model.history``, training and validation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from matplotlib.figure import Figure

#: Suffixes scvi-tools appends to logged metrics, and the curve each one names.
SPLITS = {"_train": "train", "_validation": "validation"}
#: Terms shown first, in this order; any other logged term follows in history order.
PREFERRED_ORDER = ("elbo", "reconstruction_loss", "kl_local", "kl_global", "discriminator_loss")


def loss_terms(history: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, pd.Series]]:
    """Group ``history`` keys by loss term: ``{term: {"train": series, "validation": series}}``.

    ``train_loss`` / ``validation_loss`` (the optimised total) become the term ``loss``; keys
    without a split suffix form their own term with a single ``train`` curve.
    """
    terms: dict[str, dict[str, pd.Series]] = {}
    for key, frame in history.items():
        series = frame.iloc[:, 0] if isinstance(frame, pd.DataFrame) else pd.Series(frame)
        if key in ("train_loss", "validation_loss"):
            term, split = "loss", key.split("_")[0]
        else:
            split_suffix = next((s for s in SPLITS if key.endswith(s)), None)
            term = key[: -len(split_suffix)] if split_suffix else key
            split = SPLITS[split_suffix] if split_suffix else "train"
        terms.setdefault(term, {})[split] = pd.to_numeric(series, errors="coerce")
    order = [t for t in PREFERRED_ORDER if t in terms] + [
        t for t in terms if t not in PREFERRED_ORDER
    ]
    splits = list(SPLITS.values())
    return {t: dict(sorted(terms[t].items(), key=lambda s: splits.index(s[0]))) for t in order}


def training_history(
    model_or_history,
    terms: Sequence[str] | None = None,
    skip_zero: bool = True,
    ncols: int = 3,
    show: bool | None = None,
) -> Figure | None:
    """One panel per loss term of a trained model, per epoch, training and validation.

    Parameters
    ----------
    model_or_history
        A trained :class:`~mosaicvi.MosaicVI` or its ``history`` (dict of DataFrames).
    terms
        Terms to show, named without the ``_train`` / ``_validation`` suffix (e.g.
        ``["elbo", "discriminator_loss", "graph_nll"]``; ``"loss"`` is the optimised total).
        Default: every logged term.
    skip_zero
        With ``terms=None``, leave out terms that are 0 at every epoch (``kl_global``: MosaicVI
        has no global latent variables); their names go into the figure's title.
    ncols
        Panels per row.
    show
        Show the figure (default: True, as scanpy does in interactive use).

    Returns
    -------
    The Figure (``None`` when shown, as scanpy); each panel is titled by its term, x axis
    ``epoch``, a legend per split.

    Examples
    --------
    >>> import pandas as pd
    >>> import mosaicvi
    >>> history = {
    ...     "elbo_train": pd.DataFrame({"elbo_train": [900.0, 700.0, 650.0]}),
    ...     "elbo_validation": pd.DataFrame({"elbo_validation": [950.0, 760.0, 700.0]}),
    ...     "discriminator_loss_train": pd.DataFrame({"discriminator_loss_train": [2.4, 2.3, 2.4]}),
    ... }
    >>> fig = mosaicvi.pl.training_history(history, show=False)
    >>> [ax.get_title() for ax in fig.axes]
    ['elbo', 'discriminator_loss']
    """
    import matplotlib.pyplot as plt

    history = getattr(model_or_history, "history", model_or_history)
    if history is None or not hasattr(history, "items") or len(history) == 0:
        raise ValueError(
            "No training history: pass a trained model (after model.train()) or model.history."
        )
    available = loss_terms(history)
    skipped: list[str] = []
    if terms is None:
        chosen = list(available)
        if skip_zero:
            skipped = [
                t for t in chosen if all((s.fillna(0) == 0).all() for s in available[t].values())
            ]
            chosen = [t for t in chosen if t not in skipped]
    else:
        chosen = [terms] if isinstance(terms, str) else list(terms)
        unknown = [t for t in chosen if t not in available]
        if unknown:
            raise ValueError(f"Unknown `terms` {unknown}; the history has {list(available)}.")
    if not chosen:
        raise ValueError("No loss term left to plot (every term is 0); pass `terms=`.")
    ncols = max(1, min(ncols, len(chosen)))
    nrows = int(np.ceil(len(chosen) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False)
    for ax, term in zip(axes.ravel(), chosen, strict=False):
        for split, series in available[term].items():
            epochs = np.arange(1, len(series) + 1)
            ax.plot(
                epochs, series.to_numpy(), marker="." if len(series) < 30 else None, label=split
            )
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.legend(frameon=False, fontsize="small")
    for ax in axes.ravel()[len(chosen) :]:
        fig.delaxes(ax)
    if skipped:
        fig.suptitle(f"not shown (0 at every epoch): {', '.join(skipped)}", fontsize="small")
    fig.tight_layout()
    if show is None or show:
        plt.show()
        return None
    return fig
