"""Cross-modal coherence: whether profiles imputed from one modality carry the right labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.decomposition import TruncatedSVD

from mosaicvi.metrics._views import (
    MIN_CELLS,
    cell_labels,
    check_score,
    check_views,
    counts,
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

#: Row names of :func:`cross_modal_coherence` besides the source modalities.
ALL_MODALITIES = "all measured"
REAL = "real profiles"
#: Profiles are scaled to this total before ``log1p``.
TARGET_SUM = 1e4
#: Cells imputed at a time (bounds memory for modalities with many features).
CHUNK_CELLS = 1024


def profile_features(values: np.ndarray | sp.spmatrix, binary: bool) -> np.ndarray:
    """``log1p(1e4 * x / sum(x))`` per cell; counts are binarised first for ATAC-like data.

    Real counts and imputed values (proportions, probabilities) go through the same transform,
    so a classifier trained on real profiles can read imputed ones.
    """
    x = sp.csr_matrix(values, dtype=np.float64)
    if binary:
        x.data = np.minimum(x.data, 1.0)
    total = np.asarray(x.sum(1)).ravel()
    scale = np.divide(TARGET_SUM, total, out=np.zeros_like(total), where=total > 0)
    x = sp.csr_matrix(x.multiply(scale[:, None]))
    x.data = np.log1p(x.data)
    return x


def imputed_profiles(
    model: MosaicVI,
    data: MuData | AnnData,
    cells: np.ndarray,
    target: str,
    source: str,
    sample: bool,
    rng: np.random.Generator,
    batch_size: int | None,
) -> np.ndarray:
    """``target`` decoded from ``source`` alone.

    Expected values at the posterior mean of z, or with ``sample`` counts drawn there from the
    modality's likelihood (:meth:`~mosaicvi.MosaicVI.posterior_predictive_sample`, seeded from
    ``rng``).
    """
    modalities = None if source == ALL_MODALITIES else [source]
    if sample:
        torch.manual_seed(int(rng.integers(2**31)))
        return model.posterior_predictive_sample(
            data,
            indices=cells,
            modality=target,
            modalities=modalities,
            batch_size=batch_size,
            use_z_mean=True,
        ).astype(np.float32)
    return model.get_normalized_expression(
        data,
        indices=cells,
        modality=target,
        modalities=modalities,
        use_z_mean=True,
        batch_size=batch_size,
        return_numpy=True,
    )


def cross_modal_coherence(
    model: MosaicVI,
    labels: str | Sequence,
    modalities: Sequence[str] | None = None,
    *,
    adata: MuData | AnnData | None = None,
    test_fraction: float = 0.5,
    n_components: int = 50,
    metric: str = "accuracy",
    seed: int = 0,
    batch_size: int | None = None,
    sample: bool = True,
) -> pd.DataFrame:
    """Cross-modal coherence (MMVAE): classifiers on real profiles label imputed ones.

    For every target modality ``j``, a linear classifier (truncated SVD to ``n_components``
    dimensions, then standardised logistic regression) is trained on the real profiles
    (``log1p(1e4 * x / sum(x))``; ATAC binarised) of the training cells that measured ``j``.
    For every source modality ``i``, the test cells that measured ``i`` are encoded from ``i``
    alone and ``j`` is decoded from their posterior mean
    (:meth:`~mosaicvi.MosaicVI.get_normalized_expression` with ``modalities=[i]``); a profile
    drawn from the decoded distribution (``sample=True``) is transformed the same way and
    classified. The cells are split at random once into training and test
    cells, so the classifier never saw a scored cell.

    Coherence is high when a profile imputed from another modality is recognisable as the
    right cell type by a model of real profiles; the ``real profiles`` row is that classifier's
    score on held-out real profiles (its ceiling), the diagonal scores reconstructions.

    Parameters
    ----------
    model
        A trained :class:`~mosaicvi.MosaicVI`.
    labels
        A column of the data's ``obs`` (e.g. ``"cell_type"``) or one label per cell. Cells with a
        missing label are left out.
    modalities
        Modalities to use as sources and targets (default: all).
    adata
        Data registered like the training data (default: the training data).
    test_fraction
        Fraction of the cells held out for scoring.
    n_components
        SVD components the classifier works on (at most the number of features minus one).
    metric
        ``"accuracy"`` (as MMVAE) or ``"balanced_accuracy"``.
    seed
        Seed of the split, the SVD and the classifier.
    batch_size
        Minibatch size for decoding (default: scvi-tools' setting).
    sample
        Classify counts drawn from the model (:meth:`~mosaicvi.MosaicVI.posterior_predictive_sample`:
        the modality's likelihood with its dispersion, at the median library of the cells that
        measured ``j``), so imputed profiles are as sparse as real ones. ``False``: classify the decoded means themselves; a classifier of sparse real
        profiles often mislabels such smooth profiles wholesale, whatever their quality.

    Returns
    -------
    DataFrame indexed by where the profiles come from (``source``: each modality, then
    ``"all measured"`` for imputation from every modality a cell has, then ``"real profiles"``),
    one column per target modality (``target``). NaN where fewer than two cells or classes.

    Examples
    --------
    >>> import mosaicvi
    >>> coherence = mosaicvi.metrics.cross_modal_coherence(model, "cell_type")  # doctest: +SKIP
    >>> coherence.loc["atac", "rna"]  # RNA imputed from ATAC, classified as real RNA  # doctest: +SKIP
    0.74
    """
    check_score(metric)
    data = model._validate_anndata(adata)
    modalities = check_views(model, modalities, [])
    truth = cell_labels(data, labels)
    measured = presence(model, data)
    test = held_out_split(data.n_obs, test_fraction, seed)
    labelled = np.array([t is not None for t in truth])
    rng = np.random.default_rng(seed)
    sources = [*modalities, ALL_MODALITIES]
    table = pd.DataFrame(
        np.nan,
        index=pd.Index([*sources, REAL], name="source"),
        columns=pd.Index(modalities, name="target"),
    )
    for target in modalities:
        binary = model.module.likelihoods[target].binary
        has_target = labelled & measured[target].to_numpy()
        train_cells = np.flatnonzero(has_target & ~test)
        if len(train_cells) < MIN_CELLS:
            continue
        real = profile_features(counts(model, data, target), binary)
        k = max(1, min(n_components, real.shape[1] - 1, len(train_cells) - 1))
        svd = TruncatedSVD(n_components=k, random_state=seed).fit(real[train_cells])
        classifier = linear_classifier(
            svd.transform(real[train_cells]), truth[train_cells].astype(str), seed
        )
        test_real = np.flatnonzero(has_target & test)
        table.loc[REAL, target] = score(
            classifier, svd.transform(real[test_real]), truth[test_real].astype(str), metric
        )
        for source in sources:
            has_source = (
                measured.any(axis=1) if source == ALL_MODALITIES else measured[source]
            ).to_numpy()
            cells = np.flatnonzero(labelled & has_source & test)
            if len(cells) < MIN_CELLS:
                continue
            features = np.concatenate(
                [
                    svd.transform(
                        profile_features(
                            imputed_profiles(
                                model, data, chunk, target, source, sample, rng, batch_size
                            ),
                            binary,
                        )
                    )
                    for chunk in np.array_split(cells, -(-len(cells) // CHUNK_CELLS))
                ]
            )
            table.loc[source, target] = score(
                classifier, features, truth[cells].astype(str), metric
            )
    return table
