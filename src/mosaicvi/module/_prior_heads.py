"""The latent prior of :class:`~mosaicvi.module.MosaicVAE` and the heads that go with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from torch import nn

from mosaicvi._choices import check_choice
from mosaicvi.nn import LatentClassifier, MixturePrior, ModalityPriors, StandardNormalPrior

if TYPE_CHECKING:
    from collections.abc import Callable

#: What a prior choice builds: the prior, a label classifier and per-modality priors.
PriorHeads = tuple[nn.Module, LatentClassifier | None, ModalityPriors | None]

#: The names of :data:`PRIORS`, for type hints.
PriorName = Literal["normal", "mixture", "modality"]


def _normal(modality_names, n_latent, n_labels, n_clusters):
    classifier = LatentClassifier(n_latent, n_labels) if n_labels > 0 else None
    return StandardNormalPrior(), classifier, None


def _mixture(modality_names, n_latent, n_labels, n_clusters):
    return MixturePrior(n_latent, n_clusters), None, None


def _modality(modality_names, n_latent, n_labels, n_clusters):
    prior, classifier, _ = _normal(modality_names, n_latent, n_labels, n_clusters)
    return prior, classifier, ModalityPriors(modality_names, n_latent, n_clusters)


#: Priors by name (``MosaicVI(prior=...)``): ``(modality_names, n_latent, n_labels, n_clusters)``
#: -> ``(prior, classifier, modality_priors)``.
PRIORS: dict[str, Callable[..., PriorHeads]] = {
    "normal": _normal,
    "mixture": _mixture,
    "modality": _modality,
}
#: Priors with discrete clusters (``n_clusters`` applies).
CLUSTERED_PRIORS = ("mixture", "modality")


def make_prior_heads(
    prior: str,
    modality_names: list[str],
    n_latent: int,
    n_labels: int,
    n_clusters: int | None,
) -> PriorHeads:
    """``(prior, classifier, modality_priors)`` for a ``prior`` choice of the model.

    ``"normal"``: ``N(0, I)``, with a :class:`~mosaicvi.nn.LatentClassifier` when there are labels.
    ``"mixture"``: mmAAVI's :class:`~mosaicvi.nn.MixturePrior` with ``n_clusters`` clusters (its
    ``q(c | z)`` classifies, so no separate classifier). ``"modality"``: as ``"normal"``, plus a
    learnt mixture prior per modality for the unimodal posteriors
    (:class:`~mosaicvi.nn.ModalityPriors`). ``n_clusters`` defaults to the number of labels, at
    least 10, and may not be below it.
    """
    check_choice("prior", prior, PRIORS)
    if prior in CLUSTERED_PRIORS:
        n_clusters = n_clusters or max(n_labels, 10)
        if n_clusters < n_labels:
            raise ValueError(
                f"`n_clusters` ({n_clusters}) must be at least the number of labels ({n_labels})."
            )
    return PRIORS[prior](modality_names, n_latent, n_labels, n_clusters)
