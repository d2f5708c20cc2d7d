"""Per-modality decoder: MLP on z, batch-specific per-feature affine, then the count likelihood."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mosaicvi.nn._likelihoods import (
    bernoulli_nll,
    negative_binomial_nll,
    zero_inflated_negative_binomial_nll,
)
from mosaicvi.nn._mlp import hidden_stack
from mosaicvi.nn._sparse import to_dense

_SOFTPLUS_INVERSE_OF_ONE = math.log(math.e - 1.0)


class ModalityDecoder(nn.Module):
    """Decode z into the likelihood parameters of one modality.

    ``eta = MLP(z [, covariates])``, or with feature embeddings ``V`` from a guidance graph the
    hybrid ``eta = w * z V^T + (1 - w) * MLP(z)``; then ``logits = softplus(a_s) * eta + b_s``
    with per-batch, per-feature scale ``a_s`` and bias ``b_s`` (batch enters only here and in the
    dispersion).

    - ``"nb"`` / ``"zinb"``: mean ``softmax(logits) * library``, batch-specific inverse dispersion
      ``exp(log_theta_s)`` (and zero-inflation logits for ZINB).
    - ``"bernoulli"``: accessibility probability ``sigmoid(logits + log(library / reference))``,
      where ``library`` counts the cell's open features.

    Parameters
    ----------
    n_latent
        Dimension of z.
    n_features
        Number of features of the modality.
    n_batch
        Number of batches.
    likelihood
        ``"nb"``, ``"zinb"`` or ``"bernoulli"``.
    library_reference
        Typical library size of the modality: Bernoulli offsets are relative to it.
    n_cats_per_cov
        Number of categories of each extra categorical covariate (one-hot into the MLP).
    n_hidden
        Width of the hidden layers.
    n_layers
        Number of hidden layers.
    dropout_rate
        Dropout after each hidden layer.
    graph_weight
        Weight ``w`` of the inner product with the feature embeddings (0: plain MLP decoder, which
        ignores any embeddings; 1: inner product only, no MLP, so categorical covariates are not
        used).
    initial_bias
        ``(n_features,)`` starting value of every batch's bias ``b_s`` (e.g. the logits of the
        average profile); zeros when ``None``.
    """

    def __init__(
        self,
        n_latent: int,
        n_features: int,
        n_batch: int,
        likelihood: str = "nb",
        library_reference: float = 1.0,
        n_cats_per_cov: list[int] | None = None,
        n_hidden: int = 256,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        graph_weight: float = 0.0,
        initial_bias: torch.Tensor | None = None,
    ):
        super().__init__()
        if not 0.0 <= graph_weight <= 1.0:
            raise ValueError(f"`graph_weight` must be in [0, 1], got {graph_weight}.")
        self.graph_weight = float(graph_weight)
        if likelihood not in ("nb", "zinb", "bernoulli"):
            raise ValueError(
                f"Unknown likelihood {likelihood!r}; use 'nb', 'zinb' or 'bernoulli'."
            )
        self.likelihood = likelihood
        self.n_cats_per_cov = list(n_cats_per_cov or [])
        n_in = n_latent + sum(self.n_cats_per_cov)
        if self.graph_weight < 1.0:
            self.hidden = hidden_stack(n_in, n_hidden, n_layers, dropout_rate)
            self.output = nn.Linear(n_hidden if n_layers > 0 else n_in, n_features)
        self.batch_scale = nn.Parameter(
            torch.full((n_batch, n_features), _SOFTPLUS_INVERSE_OF_ONE)
        )
        if initial_bias is None:
            initial_bias = torch.zeros(n_features)
        if initial_bias.shape != (n_features,):
            raise ValueError(
                f"`initial_bias` has shape {tuple(initial_bias.shape)}, expected ({n_features},)."
            )
        self.batch_bias = nn.Parameter(initial_bias.float().expand(n_batch, -1).clone())
        self.register_buffer(
            "log_library_reference", torch.tensor(math.log(max(library_reference, 1.0)))
        )
        if likelihood in ("nb", "zinb"):
            self.log_theta = nn.Parameter(torch.zeros(n_batch, n_features))
        if likelihood == "zinb":
            self.zi_logits = nn.Parameter(torch.full((n_batch, n_features), -2.0))

    def forward(
        self,
        z: torch.Tensor,
        batch_index: torch.Tensor,
        library: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        feature_embeddings: torch.Tensor | None = None,
        columns: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Likelihood parameters for cells ``z`` ``(n, n_latent)``.

        ``batch_index`` is ``(n,)`` long; ``library`` ``(n,)`` is the library size to decode at;
        ``feature_embeddings`` ``(n_features, n_latent)`` are this modality's rows of ``V``
        (required when ``graph_weight > 0``). ``columns`` (Bernoulli only): ``(indices,
        weights)`` from :func:`~mosaicvi.nn._feature_sampling.sample_feature_columns`; only
        those features are decoded, and the returned ``"columns"`` and ``"column_weight"`` make
        :meth:`negative_log_likelihood` the matching unbiased estimate.
        """
        index = None
        if columns is not None:
            if self.likelihood != "bernoulli":
                raise ValueError("Only a Bernoulli decoder can decode a subset of its features.")
            index = columns[0]
        eta = self._mlp(z, cat_covs, index) if self.graph_weight < 1.0 else None
        if self.graph_weight > 0.0:
            if feature_embeddings is None:
                raise ValueError("This decoder mixes in feature embeddings; pass them.")
            if index is not None:
                feature_embeddings = feature_embeddings[index]
            inner = z @ feature_embeddings.T
            eta = inner if eta is None else torch.lerp(eta, inner, self.graph_weight)
        # Per-batch tables are looked up with F.embedding: same values as row indexing, but its
        # backward is a sorted segment sum instead of a scatter-add over (cells x features),
        # which took an eighth of a training step.
        batch_scale, batch_bias = self.batch_scale, self.batch_bias
        if index is not None:
            batch_scale, batch_bias = batch_scale[:, index], batch_bias[:, index]
        scale = F.embedding(batch_index, F.softplus(batch_scale))
        bias = F.embedding(batch_index, batch_bias)
        if self.likelihood == "bernoulli":
            bias = bias + self._library_offset(library)[:, None]
        logits = torch.addcmul(bias, eta, scale)
        if self.likelihood == "bernoulli":
            if columns is not None:
                return {"logits": logits, "columns": index, "column_weight": columns[1]}
            return {"logits": logits}
        params = {
            "logits": logits,
            "mean": torch.softmax(logits, dim=-1) * library[:, None],
            "theta": F.embedding(batch_index, torch.exp(self.log_theta)),
        }
        if self.likelihood == "zinb":
            params["zi_logits"] = F.embedding(batch_index, self.zi_logits)
        return params

    def _mlp(
        self, z: torch.Tensor, cat_covs: torch.Tensor | None, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = z
        if self.n_cats_per_cov and cat_covs is not None:
            one_hots = [
                F.one_hot(cat_covs[:, i].long(), n) for i, n in enumerate(self.n_cats_per_cov)
            ]
            h = torch.cat([z, *[o.to(z.dtype) for o in one_hots]], dim=-1)
        h = self.hidden(h)
        if index is None:
            return self.output(h)
        return F.linear(h, self.output.weight[index], self.output.bias[index])

    def _library_offset(self, library: torch.Tensor) -> torch.Tensor:
        """Bernoulli logit offset ``log(library / reference)`` of each cell."""
        return torch.log(library.clamp(min=1.0)) - self.log_library_reference

    def negative_log_likelihood(
        self, x: torch.Tensor, params: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Per-cell NLL of counts ``x`` (dense or CSR, rows matching ``params``)."""
        if self.likelihood == "bernoulli":
            return bernoulli_nll(
                x, params["logits"], params.get("columns"), params.get("column_weight")
            )
        x = to_dense(x)
        if self.likelihood == "zinb":
            return zero_inflated_negative_binomial_nll(
                x, params["mean"], params["theta"], params["zi_logits"]
            )
        return negative_binomial_nll(x, params["mean"], params["theta"])
