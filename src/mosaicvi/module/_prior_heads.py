"""The latent prior of :class:`~mosaicvi.module.MosaicVAE` and the heads that go with it."""

from __future__ import annotations

from torch import nn

from mosaicvi.nn import LatentClassifier, MixturePrior, ModalityPriors, StandardNormalPrior

PRIORS = ("normal", "mixture", "modality")


def make_prior_heads(
    prior: str,
    modality_names: list[str],
    n_latent: int,
    n_labels: int,
    n_clusters: int | None,
) -> tuple[nn.Module, LatentClassifier | None, ModalityPriors | None]:
    """``(prior, classifier, modality_priors)`` for a ``prior`` choice of the model.

    ``"normal"``: ``N(0, I)``, with a :class:`~mosaicvi.nn.LatentClassifier` when there are labels.
    ``"mixture"``: mmAAVI's :class:`~mosaicvi.nn.MixturePrior` with ``n_clusters`` clusters (its
    ``q(c | z)`` classifies, so no separate classifier). ``"modality"``: as ``"normal"``, plus a
    learnt mixture prior per modality for the unimodal posteriors
    (:class:`~mosaicvi.nn.ModalityPriors`). ``n_clusters`` defaults to the number of labels, at
    least 10, and may not be below it.
    """
    if prior not in PRIORS:
        raise ValueError(f"`prior` is {prior!r}; use 'normal', 'mixture' or 'modality'.")
    if prior in ("mixture", "modality"):
        n_clusters = n_clusters or max(n_labels, 10)
        if n_clusters < n_labels:
            raise ValueError(
                f"`n_clusters` ({n_clusters}) must be at least the number of labels ({n_labels})."
            )
    if prior == "mixture":
        return MixturePrior(n_latent, n_clusters), None, None
    classifier = LatentClassifier(n_latent, n_labels) if n_labels > 0 else None
    modality_priors = (
        ModalityPriors(modality_names, n_latent, n_clusters) if prior == "modality" else None
    )
    return StandardNormalPrior(), classifier, modality_priors
