"""Importance-weighted objectives (IWAE with DReG gradients) and the marginal log-likelihood.

For a cell with fused posterior ``q(z | x) = sum_c pi_c q_c(z)`` (one component for the attention
and product fusions, one per present expert or subset for the mixtures) and ``K`` draws from every
component (stratified, as MMVAE), the importance weights are

``log w_ck = log p(x_present | z_ck) + beta * (log p(z_ck) - log q(z_ck | x))``

over the modalities the cell measured, and

``log p_hat(x) = logsumexp_{c,k} (log pi_c + log w_ck) - log K``

is a stochastic lower bound on ``log p(x)`` that tightens with ``K`` (Burda et al. 2016; its
stratified form is MMVAE's ``m_dreg`` objective, Shi et al. 2019). ``beta`` is the KL warm-up
weight (1 after warm-up, where the bound is exact IWAE).

Gradients (``importance_gradient``):

- ``"dreg"`` (default): doubly reparameterised (Tucker et al. 2019). ``log q`` is evaluated with
  the encoder's variational parameters detached, so the encoder is reached only through the
  samples ``z``, whose gradient is scaled by the normalised weights once more (squared weights in
  all); the decoder gets the ordinary IWAE gradient. For one Gaussian component this is Tucker et
  al.'s unbiased estimator. For the mixtures it is MMVAE's ``m_dreg``: DReG's identity assumes each
  sample is scored by the density it was drawn from, while here the samples of one expert are
  scored by the whole mixture, so (as in MMVAE) the encoder gradient is approximate where experts
  overlap.
- ``"iwae"``: the plain reparameterised gradient of the bound (all terms, ``log q`` included).
"""

from __future__ import annotations

import math
from typing import Final

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.module.base import auto_move_data
from torch.distributions import Normal

from mosaicvi._constants import MODULE_KEYS, modality_registry_key
from mosaicvi.nn._mixture_prior import _MIN_SCALE, MixturePrior
from mosaicvi.nn._normal_prior import StandardNormalPrior
from mosaicvi.nn._posterior import FusedPosterior
from mosaicvi.nn._sparse import gather_rows

#: Gradient estimators of the importance-weighted bound.
IMPORTANCE_GRADIENTS: Final = ("dreg", "iwae")
#: Rows (samples x components x cells) decoded at once by :meth:`marginal_ll`.
_ROWS_PER_PASS: Final = 4096


def segment_logsumexp(
    values: torch.Tensor, segments: torch.Tensor, n_segments: int
) -> torch.Tensor:
    """``log sum exp`` of ``values`` ``(S, R)`` over samples and the rows of each segment.

    ``segments`` ``(R,)`` gives each row's segment (its cell); returns ``(n_segments,)``, ``-inf``
    for a segment without rows. Differentiable in ``values``.
    """
    flat = values.reshape(-1)
    index = segments.repeat(values.shape[0])
    peak = flat.new_full((n_segments,), -math.inf).scatter_reduce(
        0, index, flat.detach(), "amax", include_self=True
    )
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = flat.new_zeros(n_segments).index_add(0, index, torch.exp(flat - peak[index]))
    return peak + torch.log(total)


def _segment_sum(values: torch.Tensor, segments: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Sum of ``values`` ``(S, R)`` over samples and the rows of each segment."""
    index = segments.repeat(values.shape[0])
    return values.new_zeros(n_segments).index_add(0, index, values.reshape(-1))


def _detached(posterior: FusedPosterior) -> FusedPosterior:
    """The same posterior with its parameters cut from the graph (DReG's ``log q``)."""
    return FusedPosterior(
        posterior.locs.detach(),
        posterior.scales.detach(),
        posterior.component_weights.detach(),
        posterior.modality_weights.detach(),
    )


def stratified_draws(
    posterior: FusedPosterior, n_samples: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n_samples`` reparameterised draws from every component with positive weight.

    Returns ``(z, cell_index, log_weight)``: ``z`` ``(n_samples, R, n_latent)``, row ``r`` drawn
    from one component of cell ``cell_index[r]`` whose mixture weight is ``exp(log_weight[r])``.
    """
    cells, components = torch.nonzero(posterior.component_weights > 0, as_tuple=True)
    locs = posterior.locs[cells, components]
    scales = posterior.scales[cells, components]
    z = Normal(locs, scales).rsample((n_samples,))
    return z, cells, posterior.component_weights[cells, components].log()


def mixture_prior_log_density(prior: MixturePrior, z: torch.Tensor) -> torch.Tensor:
    """Estimate of ``log p(z)`` under mmAAVI's mixture prior (the log of an unbiased ``p(z)``).

    ``p(z) = sum_c pi_c E_{u ~ q(u | c, z)}[p(z | c, u) p(u) / q(u | c, z)]`` with one draw of
    ``u`` per cluster (``c`` enumerated as one-hot vectors, ``pi`` uniform). Used only for
    :meth:`~ImportanceWeightedMixin.marginal_ll`.
    """
    n_clusters = prior.n_clusters
    one_hot = torch.eye(n_clusters, dtype=z.dtype, device=z.device).expand(z.shape[0], -1, -1)
    z_rep = z.unsqueeze(1).expand(-1, n_clusters, -1)
    u_loc, u_scale = prior.u_encoder(torch.cat([one_hot, z_rep], dim=-1)).chunk(2, dim=-1)
    qu = Normal(u_loc, F.softplus(u_scale) + _MIN_SCALE)
    u = qu.sample()
    z_loc, z_scale = prior.z_prior(torch.cat([one_hot, u], dim=-1)).chunk(2, dim=-1)
    log_pz = Normal(z_loc, F.softplus(z_scale) + _MIN_SCALE).log_prob(z_rep).sum(-1)
    log_pu = Normal(torch.zeros_like(u), torch.ones_like(u)).log_prob(u).sum(-1)
    log_terms = log_pz + log_pu - qu.log_prob(u).sum(-1)
    return torch.logsumexp(log_terms, dim=-1) - math.log(n_clusters)


class ImportanceWeightedMixin:
    """Importance-weighted bound and marginal log-likelihood of :class:`~mosaicvi.module.MosaicVAE`.

    See the module docstring for the estimator; :meth:`importance_weighted_loss` is the training
    objective behind ``MosaicVI.train(n_importance_samples=K)``.
    """

    def check_importance_sampling(self, n_samples: int, gradient: str = "dreg") -> None:
        """Raise a ValueError if ``n_samples`` importance samples cannot train this module."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(
                f"`n_importance_samples` must be an integer >= 1 (1: the ELBO), got {n_samples!r}."
            )
        if gradient not in IMPORTANCE_GRADIENTS:
            raise ValueError(
                f"`importance_gradient` is {gradient!r}; use one of {IMPORTANCE_GRADIENTS}."
            )
        if n_samples > 1 and not isinstance(self.prior, StandardNormalPrior):
            raise ValueError(
                f"`n_importance_samples={n_samples}` needs `prior='normal'`: the "
                f"{self.prior_name!r} prior's log p(z) has no closed form, and its one-sample KL "
                "terms are not importance weights. Use prior='normal' or n_importance_samples=1."
            )

    def log_prior_density(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z)`` per row of ``z`` ``(n, n_latent)`` (an estimate for the mixture prior)."""
        if isinstance(self.prior, StandardNormalPrior):
            return Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)
        if isinstance(self.prior, MixturePrior):
            return mixture_prior_log_density(self.prior, z)
        raise ValueError(
            f"The {self.prior_name!r} prior has no log-density for importance sampling; "
            "use prior='normal' or prior='mixture'."
        )

    def present_log_likelihood(
        self,
        tensors: dict[str, torch.Tensor],
        presence: torch.Tensor,
        z: torch.Tensor,
        cell_index: torch.Tensor,
        v: torch.Tensor | None,
    ) -> torch.Tensor:
        """``log p(x_present | z_r)`` per row: summed over the modalities cell ``r`` measured.

        ``z`` ``(n, n_latent)``, ``cell_index`` ``(n,)`` the cell of each row, ``presence`` the
        minibatch's boolean presence mask, ``v`` the feature embeddings (or ``None``).
        """
        batch_index = tensors[REGISTRY_KEYS.BATCH_KEY].reshape(-1).long()
        cat_covs = tensors.get(REGISTRY_KEYS.CAT_COVS_KEY)
        total = z.new_zeros(z.shape[0], dtype=torch.float32)
        for i, m in enumerate(self.modality_names):
            rows = torch.nonzero(presence[cell_index, i], as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            cells = cell_index[rows]
            counts = tensors[modality_registry_key(m)]
            px = self.decode_modality(
                m,
                z[rows],
                batch_index,
                self.library_size(m, counts, batch_index),
                cat_covs,
                v,
                cells=cells,
            )
            nll = self.decoders[m].negative_log_likelihood(gather_rows(counts, cells), px)
            total = total.index_add(0, rows, -nll.float())
        return total

    def log_importance_weights(
        self,
        tensors: dict[str, torch.Tensor],
        presence: torch.Tensor,
        posterior: FusedPosterior,
        z: torch.Tensor,
        cell_index: torch.Tensor,
        v: torch.Tensor | None,
        kl_weight: float = 1.0,
    ) -> torch.Tensor:
        """``log p(x_present | z) + kl_weight * (log p(z) - log q(z | x))`` for ``z`` ``(S, R, d)``.

        Returns ``(S, R)``; ``q`` is the whole ``posterior`` (the mixture, for mixture fusions).
        """
        n_samples, n_rows, n_latent = z.shape
        flat = z.reshape(n_samples * n_rows, n_latent)
        cells = cell_index.repeat(n_samples)
        log_lik = self.present_log_likelihood(tensors, presence, flat, cells, v)
        log_ratio = self.log_prior_density(flat) - posterior.log_prob(flat, cells)
        return (log_lik + kl_weight * log_ratio).reshape(n_samples, n_rows)

    def importance_weighted_loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        n_samples: int,
        kl_weight: float = 1.0,
        gradient: str = "dreg",
    ) -> torch.Tensor:
        """Negative importance-weighted bound per cell ``(n_cells,)``, with DReG or IWAE gradients.

        Its value is ``-log p_hat(x)`` with ``n_samples`` draws per posterior component (see the
        module docstring); only the modalities each cell measured are scored. The feature
        embeddings are the minibatch's draw in ``generative_outputs`` (with a guidance graph).
        """
        self.check_importance_sampling(n_samples, gradient)
        posterior = inference_outputs[MODULE_KEYS.POSTERIOR_KEY]
        presence = inference_outputs[MODULE_KEYS.PRESENCE_KEY]
        n_cells = presence.shape[0]
        z, cells, log_pi = stratified_draws(posterior, n_samples)
        scored = _detached(posterior) if gradient == "dreg" else posterior
        log_w = self.log_importance_weights(
            tensors,
            presence,
            scored,
            z,
            cells,
            generative_outputs.get(MODULE_KEYS.V_KEY),
            kl_weight,
        )
        log_terms = log_w + log_pi
        bound = segment_logsumexp(log_terms, cells, n_cells) - math.log(n_samples)
        if gradient == "iwae":
            return -bound
        with torch.no_grad():
            normalised = torch.exp(log_terms - bound[cells] - math.log(n_samples))
        if z.requires_grad:
            z.register_hook(lambda grad: grad * normalised.unsqueeze(-1))
        surrogate = _segment_sum(normalised * log_w, cells, n_cells)
        return -(bound.detach() + surrogate - surrogate.detach())

    @torch.inference_mode()
    @auto_move_data
    def marginal_ll(
        self,
        tensors: dict[str, torch.Tensor],
        n_mc_samples: int = 100,
        return_mean: bool = False,
        n_mc_samples_per_pass: int | None = None,
    ) -> torch.Tensor:
        """Importance-sampled ``log p(x_present)`` per cell, the fused posterior as proposal.

        ``n_mc_samples`` draws from every component of each cell's posterior (stratified); the
        likelihood covers the modalities the cell measured, at its observed library sizes and the
        posterior mean of the feature embeddings. Call in eval mode.

        Returns
        -------
        ``(n_cells,)`` estimates (their mean with ``return_mean``).
        """
        if isinstance(n_mc_samples, bool) or not isinstance(n_mc_samples, int) or n_mc_samples < 1:
            raise ValueError(f"`n_mc_samples` must be an integer >= 1, got {n_mc_samples!r}.")
        inference_outputs = self.inference(**self._get_inference_input(tensors))
        posterior = inference_outputs[MODULE_KEYS.POSTERIOR_KEY]
        presence = inference_outputs[MODULE_KEYS.PRESENCE_KEY]
        v = None if self.graph_encoder is None else self.graph_encoder().loc
        n_cells = presence.shape[0]
        n_rows = int((posterior.component_weights > 0).sum())
        per_pass = n_mc_samples_per_pass or max(1, _ROWS_PER_PASS // max(n_rows, 1))
        chunks = []
        for start in range(0, n_mc_samples, per_pass):
            z, cells, log_pi = stratified_draws(posterior, min(per_pass, n_mc_samples - start))
            log_w = self.log_importance_weights(tensors, presence, posterior, z, cells, v)
            chunks.append(log_w + log_pi)
        log_p = segment_logsumexp(torch.cat(chunks), cells, n_cells) - math.log(n_mc_samples)
        return log_p.mean() if return_mean else log_p
