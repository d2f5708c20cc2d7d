"""Per-modality decoder: MLP on z, batch-specific per-feature affine, then the count likelihood."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mosaicvi.nn._likelihoods import Likelihood, Params, get_likelihood
from mosaicvi.nn._mlp import hidden_stack

_SOFTPLUS_INVERSE_OF_ONE = math.log(math.e - 1.0)


#: Logit of features a cell's batch did not measure while fitting: no share of the softmax.
UNMEASURED_LOGIT = -1e4


class ModalityDecoder(nn.Module):
    """Decode z into the likelihood parameters of one modality.

    ``eta = MLP(z [, covariates])``, or with feature embeddings ``V`` from a guidance graph the
    hybrid ``eta = w * z V^T + (1 - w) * MLP(z)``; then ``logits = softplus(a_s) * eta + b_s``
    with per-batch, per-feature scale ``a_s`` and bias ``b_s`` (batch enters only here and in the
    likelihood's own per-batch parameters, such as the NB dispersion). The likelihood
    (:mod:`mosaicvi.nn._likelihoods`) turns the logits into its parameters: e.g. the NB mean
    ``softmax(logits) * library``, or the Bernoulli probability
    ``sigmoid(logits + log(library / reference))``.

    Parameters
    ----------
    n_latent
        Dimension of z.
    n_features
        Number of features of the modality.
    n_batch
        Number of batches.
    likelihood
        A registered likelihood name (``"nb"``, ``"zinb"``, ``"poisson"``, ``"bernoulli"``) or
        a :class:`~mosaicvi.nn._likelihoods.Likelihood`.
    library_reference
        Typical library size of the modality (decoding at a typical cell; Bernoulli offsets
        are relative to it).
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
        likelihood: str | Likelihood = "nb",
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
        self.likelihood = get_likelihood(likelihood)
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
        for name, value in self.likelihood.batch_parameters.items():
            self.register_parameter(name, nn.Parameter(torch.full((n_batch, n_features), value)))

    def forward(
        self,
        z: torch.Tensor,
        batch_index: torch.Tensor,
        library: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        feature_embeddings: torch.Tensor | None = None,
        columns: tuple[torch.Tensor, torch.Tensor] | None = None,
        feature_mask: torch.Tensor | None = None,
    ) -> Params:
        """Likelihood parameters for cells ``z`` ``(n, n_latent)``.

        ``batch_index`` is ``(n,)`` long; ``library`` ``(n,)`` is the library size to decode at;
        ``feature_embeddings`` ``(n_features, n_latent)`` are this modality's rows of ``V``
        (required when ``graph_weight > 0``). ``columns`` (likelihoods with
        ``column_subsets``): ``(indices, weights)`` from
        :func:`~mosaicvi.nn._feature_sampling.sample_feature_columns`; only those features are
        decoded, and the returned ``"columns"`` and ``"column_weight"`` make
        :meth:`negative_log_likelihood` the matching unbiased estimate. ``feature_mask``
        ``(n, n_features)`` bool (feature masks; ``None``: all measured): unmeasured features
        are left out of the softmax and, through ``params["feature_mask"]``, of the NLL.
        """
        index = None
        if columns is not None:
            if not self.likelihood.column_subsets:
                raise ValueError(
                    f"A {self.likelihood.name!r} decoder cannot decode a subset of its features."
                )
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
        offset = self.likelihood.logit_offset(library, self.log_library_reference)
        if offset is not None:
            bias = bias + offset[:, None]
        logits = torch.addcmul(bias, eta, scale)
        if feature_mask is not None:
            feature_mask = feature_mask if index is None else feature_mask[:, index]
            logits = logits.masked_fill(~feature_mask, UNMEASURED_LOGIT)
        batch_parameters = {name: getattr(self, name) for name in self.likelihood.batch_parameters}
        params = self.likelihood.parameters(logits, library, batch_index, batch_parameters)
        if columns is not None:
            params.update(columns=index, column_weight=columns[1])
            if getattr(columns, "weighted_open", False):
                params["weighted_open"] = True
        if feature_mask is not None:
            params["feature_mask"] = feature_mask
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

    def negative_log_likelihood(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Per-cell NLL of counts ``x`` (dense or CSR, rows matching ``params``), in float32.

        Under mixed precision (``train(precision="bf16-mixed")``) the decoder's outputs are
        bfloat16; the likelihood is evaluated on float32 copies, outside autocast.
        """
        params = {
            k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
            for k, v in params.items()
        }
        with torch.autocast(x.device.type, enabled=False):
            return self.likelihood.negative_log_likelihood(x, params)
