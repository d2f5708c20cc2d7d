"""The networks of :class:`~mosaicvi.module.MosaicVAE`, one builder per part.

The module calls them in a fixed order (graph encoder, encoders, fusion, prior heads, decoders,
discriminators): parameters are initialised in that order, so a seed gives the same model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from mosaicvi._choices import check_choice
from mosaicvi.module._closed_feature_sampling import checked_fraction
from mosaicvi.module._prior_heads import PRIORS
from mosaicvi.nn import (
    FUSIONS,
    GraphEncoder,
    ModalityDecoder,
    ModalityEncoder,
    OutputDiscriminator,
    make_input_transform,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import scipy.sparse as sp
    import torch

    from mosaicvi.nn._likelihoods import Likelihood


def check_module_options(
    fusion: str,
    prior: str,
    modality_dropout: float,
    closed_feature_fraction: float,
    cross_modal_weight: float,
) -> None:
    """Refuse bad choices and ranges before anything is fitted or built (a clear ValueError)."""
    check_choice("fusion", fusion, FUSIONS)
    check_choice("prior", prior, PRIORS)
    if cross_modal_weight < 0:
        raise ValueError(f"`cross_modal_weight` must be >= 0, got {cross_modal_weight}.")
    if not 0.0 <= modality_dropout < 1.0:
        raise ValueError(f"`modality_dropout` must be in [0, 1), got {modality_dropout}.")
    checked_fraction(closed_feature_fraction)


def feature_slices(
    modality_names: Sequence[str], n_features: Mapping[str, int]
) -> dict[str, tuple[int, int]]:
    """``(start, stop)`` of each modality's features in model order (the guidance graph's)."""
    slices, start = {}, 0
    for m in modality_names:
        slices[m] = (start, start + n_features[m])
        start += n_features[m]
    return slices


def make_graph_encoder(
    guidance_graph: sp.spmatrix | sp.sparray | None,
    n_features_total: int,
    n_latent: int,
    n_positive_edges: int,
    n_negatives: int,
) -> GraphEncoder | None:
    """The graph encoder of a feature x feature guidance graph (``None`` without a graph)."""
    if guidance_graph is None:
        return None
    if guidance_graph.shape != (n_features_total, n_features_total):
        raise ValueError(
            f"The guidance graph has shape {guidance_graph.shape}; the modalities have "
            f"{n_features_total} features in all."
        )
    return GraphEncoder(
        guidance_graph, n_latent, n_positive_edges=n_positive_edges, n_negatives=n_negatives
    )


def make_encoders(
    n_features: Mapping[str, int],
    input_transforms: Mapping[str, str],
    transform_params: Mapping[str, Mapping[str, torch.Tensor]],
    n_hidden: int,
    n_layers: int,
    dropout_rate: float,
    n_batch: int = 0,
) -> nn.ModuleDict:
    """One :class:`~mosaicvi.nn.ModalityEncoder` per modality (``n_features``' order).

    ``n_batch > 0`` conditions each on the batch (a learnt per-batch vector in its first layer).
    """
    return nn.ModuleDict(
        {
            m: ModalityEncoder(
                n,
                make_input_transform(input_transforms[m], transform_params.get(m)),
                n_hidden=n_hidden,
                n_layers=n_layers,
                dropout_rate=dropout_rate,
                n_batch=n_batch,
            )
            for m, n in n_features.items()
        }
    )


def make_decoders(
    n_latent: int,
    n_features: Mapping[str, int],
    n_batch: int,
    likelihoods: Mapping[str, Likelihood],
    library_reference: Mapping[str, float],
    decoder_bias: Mapping[str, torch.Tensor],
    n_cats_per_cov: list[int] | None,
    n_hidden: int,
    n_layers: int,
    dropout_rate: float,
    graph_weight: float,
) -> nn.ModuleDict:
    """One :class:`~mosaicvi.nn.ModalityDecoder` per modality (``n_features``' order)."""
    return nn.ModuleDict(
        {
            m: ModalityDecoder(
                n_latent,
                n,
                n_batch,
                likelihood=likelihoods[m],
                library_reference=library_reference[m],
                n_cats_per_cov=n_cats_per_cov,
                n_hidden=n_hidden,
                n_layers=n_layers,
                dropout_rate=dropout_rate,
                graph_weight=graph_weight,
                initial_bias=decoder_bias.get(m),
            )
            for m, n in n_features.items()
        }
    )


def make_output_discriminators(
    n_features: Mapping[str, int], dropout_rate: float
) -> nn.ModuleDict:
    """One :class:`~mosaicvi.nn.OutputDiscriminator` per modality."""
    return nn.ModuleDict(
        {m: OutputDiscriminator(n, dropout_rate=dropout_rate) for m, n in n_features.items()}
    )
