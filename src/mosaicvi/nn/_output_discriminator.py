"""Output discriminator: tells a modality's real profiles from profiles drawn from the decoders.

A decoder gives a distribution per cell (NB/ZINB means and dispersions, Bernoulli probabilities),
whereas the data are single draws. A discriminator shown the decoded *means* against observed
counts would tell them apart by their smoothness alone (means are never sparse), and its gradient
would push the means towards sparse-looking profiles that the likelihood cannot fit. Both sides
are therefore put on the same footing:

- the decoded side is a draw from the decoded distribution (exact NB, ZINB or Bernoulli sample),
  made differentiable with a straight-through estimator (forward: the sample; backward: the
  gradient of its mean), so the generator is pushed to move the distribution, not to mimic noise;
- both sides go through the same normalisation: ``log1p`` of counts rescaled to the modality's
  typical library (open/closed for Bernoulli modalities).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mosaicvi.nn._likelihoods import Likelihood, Params
from mosaicvi.nn._mlp import hidden_stack
from mosaicvi.nn._sparse import SparseInputLinear, is_sparse, row_ids, row_sums, with_values


def straight_through_sample(params: Params, likelihood: Likelihood) -> torch.Tensor:
    """A draw from decoded likelihood parameters, with the gradient of the distribution's mean.

    Forward: an exact sample (:meth:`Likelihood.sample`); backward: ``d sample / d mean = 1``
    (straight-through), so the result is a differentiable function of the decoder output.

    Examples
    --------
    >>> from mosaicvi.nn._likelihoods import get_likelihood
    >>> params = {"logits": torch.zeros(2, 3, requires_grad=True)}
    >>> sample = straight_through_sample(params, get_likelihood("bernoulli"))
    >>> bool(((sample == 0) | (sample == 1)).all())
    True
    """
    mean = likelihood.mean(params)
    return likelihood.sample(params) + mean - mean.detach()


def normalized_profile(
    x: torch.Tensor, likelihood: Likelihood, target_library: float
) -> torch.Tensor:
    """What the discriminator reads: ``log1p(target_library * x / library)`` per cell.

    Modalities with a binary likelihood (Bernoulli) are binarised instead. ``x`` may be dense or a CSR tensor (kept sparse);
    an all-zero row stays zero.
    """
    if likelihood.binary:
        if is_sparse(x):
            return with_values(x, (x.values() > 0).to(x.values().dtype))
        return (x > 0).to(x.dtype) + (x - x.detach())
    scale = target_library / row_sums(x).clamp_min(1.0)
    if is_sparse(x):
        return with_values(x, torch.log1p(x.values() * scale[row_ids(x)]))
    return torch.log1p(x * scale[:, None])


class OutputDiscriminator(nn.Module):
    """MLP that scores how real a normalised profile of one modality looks (a logit per cell).

    The first layer accepts sparse CSR input (observed ATAC profiles stay sparse); the hidden
    layers use LayerNorm, not BatchNorm, so real and decoded rows do not share statistics.

    Parameters
    ----------
    n_features
        Number of features of the modality.
    n_hidden
        Width of the hidden layers.
    n_layers
        Hidden layers after the first one.
    dropout_rate
        Dropout after each hidden layer.

    Examples
    --------
    >>> discriminator = OutputDiscriminator(n_features=50)
    >>> discriminator(torch.rand(4, 50)).shape
    torch.Size([4])
    """

    def __init__(
        self, n_features: int, n_hidden: int = 128, n_layers: int = 1, dropout_rate: float = 0.1
    ):
        super().__init__()
        self.input = SparseInputLinear(n_features, n_hidden)
        self.hidden = nn.Sequential(
            nn.LayerNorm(n_hidden),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout_rate),
            hidden_stack(n_hidden, n_hidden, n_layers, dropout_rate),
        )
        self.output = nn.Linear(n_hidden, 1)

    def forward(self, profile: torch.Tensor) -> torch.Tensor:
        """Logit that each row of ``profile`` ``(n, n_features)`` is a real profile."""
        return self.output(self.hidden(self.input(profile))).squeeze(-1)

    def frozen(self, profile: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with the weights detached: the gradient reaches ``profile`` only.

        The generator's term uses this, so it cannot train the discriminator to be fooled.
        """
        parameters = {name: p.detach() for name, p in self.named_parameters()}
        return torch.func.functional_call(self, parameters, (profile,))


def discriminator_loss(
    discriminator: OutputDiscriminator, real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """Binary cross-entropy of the discriminator: ``real`` rows are 1, ``fake`` rows (detached) 0.

    Real and decoded rows count equally, whatever their numbers.
    """
    real_logits = discriminator(real)
    fake_logits = discriminator(fake.detach())
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss(discriminator: OutputDiscriminator, fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``-log D(fake)`` (mean), through the frozen discriminator."""
    logits = discriminator.frozen(fake)
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
