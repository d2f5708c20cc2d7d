"""Evaluation of a trained MosaicVI: latent accuracy per modality and cross-modal coherence.

The metrics of MMVAE (Shi et al., 2019) for multimodal VAEs, on cell labels:

- :func:`latent_accuracy`: a linear classifier on the latent code computed from one modality
  alone, scored on held-out cells of the same or another modality view;
- :func:`cross_modal_coherence`: a classifier trained on real profiles of one modality labels
  the profiles imputed from another modality.

two scores of how well two embeddings of the same cells line up:

- :func:`foscttm`: the fraction of cells closer than a cell's true match across two modalities;
- :func:`knn_label_transfer`: a k-nearest-neighbour vote from labelled to query cells.

and one that needs neither labels nor pairs:

- :func:`modality_mixing`: how well cells that measured different modalities mix in the latent
  space (a held-out probe of the modality set, and kNN mixing); :func:`modality_mixing_scores`
  computes the same from any embedding.
"""

from mosaicvi.metrics._alignment import foscttm, knn_label_transfer
from mosaicvi.metrics._coherence import cross_modal_coherence
from mosaicvi.metrics._latent_accuracy import latent_accuracy
from mosaicvi.metrics._mixing import modality_mixing, modality_mixing_scores

__all__ = [
    "cross_modal_coherence",
    "foscttm",
    "knn_label_transfer",
    "latent_accuracy",
    "modality_mixing",
    "modality_mixing_scores",
]
