"""Count likelihoods of the decoders: one class per distribution, registered by name.

A likelihood owns everything that depends on the distribution: the per-batch parameters the
decoder learns besides its logits, the conversion of logits into distribution parameters, the
per-cell negative log-likelihood (dense or CSR counts, optionally on a subset of the features),
the expected value, sampling of new counts, the library a cell is measured by, the initial decoder
bias and the defaults of differential testing. Decoder, module, model set-up, DE and metrics ask
the likelihood object; none of them compares likelihood names.

Adding a distribution is one subclass decorated with :func:`register_likelihood` (see
:class:`PoissonLikelihood`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scvi.distributions import NegativeBinomial, ZeroInflatedNegativeBinomial

from mosaicvi._choices import check_choice
from mosaicvi.nn._column_statistics import column_nonzeros, column_sums, rows_mask
from mosaicvi.nn._sparse import is_sparse, row_ids, row_nnz, row_sums, to_dense

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Decoded parameters of a minibatch (``"logits"`` always; the rest depends on the likelihood).
Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class DifferentialDefaults:
    """How a modality is tested for differential features when the caller does not say otherwise.

    Attributes
    ----------
    change
        ``"log-fold"`` (log2 fold change of the decoded values plus a pseudocount) or
        ``"difference"`` (difference of accessibility probabilities).
    delta
        Smallest effect that counts as differential, in the units of ``change``.
    library_size
        Library to decode at (see :meth:`~mosaicvi.MosaicVI.get_normalized_expression`).
    pseudocounts
        Added to the decoded values before the log fold change; ``None``: estimated per comparison
        from the features the groups' measuring cells do not express, as scVI does.
    """

    change: str
    delta: float
    library_size: float | str | None
    pseudocounts: float | None


class Likelihood:
    """Base class of the count likelihoods (see the module docstring for what one owns).

    Subclasses set :attr:`name` and implement :meth:`parameters` and
    :meth:`negative_log_likelihood`, :meth:`mean` and :meth:`sample`.
    """

    #: Name under which the likelihood is registered (``likelihoods={"rna": name}``).
    name: ClassVar[str]
    #: Whether the likelihood models only whether a feature is non-zero (accessibility).
    binary: ClassVar[bool] = False
    #: Whether a training step may decode a subset of the features (closed-feature sampling).
    column_subsets: ClassVar[bool] = False
    #: Per-batch, per-feature parameters the decoder learns: name -> initial value.
    batch_parameters: ClassVar[Mapping[str, float]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- set-up, on the cells that measured the modality (numpy / scipy) -------------------------
    def cell_library(self, counts: sp.csr_matrix) -> np.ndarray:
        """Per-cell library of a CSR count matrix: total counts."""
        return np.asarray(sp.csr_matrix(counts).sum(1)).ravel()

    def library_reference(self, counts: sp.csr_matrix, rows: np.ndarray | None = None) -> float:
        """Median library of ``rows`` (a boolean mask; ``None``: all).

        Outputs decode at it for a typical cell; :meth:`logit_offset` is relative to it.
        """
        return float(np.median(self.cell_library(counts)[rows_mask(counts, rows)]))

    def initial_bias(
        self,
        counts: sp.csr_matrix,
        rows: np.ndarray | None = None,
        n_measuring: np.ndarray | None = None,
    ) -> torch.Tensor:
        """Per-feature decoder bias reproducing the average profile of ``rows`` when ``eta = 0``.

        Count likelihoods: ``log`` of each feature's share of all counts (the softmax logits of
        the average cell). Starting there, the latent space is not spent on the average profile.
        ``n_measuring``: per feature, the cells of ``rows`` that measured it (feature masks; its
        unmeasured entries must be zero in ``counts``); each feature's average is over those.
        """
        totals = column_sums(counts, rows)
        if n_measuring is not None:
            n_rows = np.count_nonzero(rows_mask(counts, rows))
            totals = totals * n_rows / np.maximum(n_measuring, 1)
        share = (totals + 0.5) / (totals.sum() + 0.5 * totals.size)
        return torch.as_tensor(np.log(share), dtype=torch.float32)

    def default_decoding_library(self, reference: float) -> float:
        """Library outputs decode at when none is given: 1, so decoded values are proportions."""
        return 1.0

    def differential_defaults(self, kind: str) -> DifferentialDefaults:
        """DE defaults for a modality of ``kind``: scVI's log fold change for counts.

        RNA and generic counts: proportions (library 1), log2 fold change, delta 0.25 and
        estimated pseudocounts, as scVI. ADT: expected counts at the median library with a
        prior count of one.
        """
        if kind == "adt":
            return DifferentialDefaults("log-fold", 0.25, "median", 1.0)
        return DifferentialDefaults("log-fold", 0.25, None, None)

    # -- training and outputs (torch) -------------------------------------------------------------
    def library_size(self, x: torch.Tensor) -> torch.Tensor:
        """Per-cell library of counts ``x`` (dense or CSR): total counts."""
        return row_sums(x)

    def logit_offset(
        self, library: torch.Tensor, log_library_reference: torch.Tensor
    ) -> torch.Tensor | None:
        """Per-cell offset added to the decoder bias before the logits (``None``: none)."""
        return None

    def parameters(
        self,
        logits: torch.Tensor,
        library: torch.Tensor,
        batch_index: torch.Tensor,
        batch_parameters: Mapping[str, torch.Tensor],
    ) -> Params:
        """Distribution parameters from the decoder's ``logits`` ``(n, F)``.

        ``library`` ``(n,)`` is the library to decode at; ``batch_parameters`` are the decoder's
        tables named in :attr:`batch_parameters` (``(n_batch, F)``), looked up by ``batch_index``.
        """
        raise NotImplementedError

    def negative_log_likelihood(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Per-cell NLL of counts ``x`` (dense or CSR, rows matching ``params``).

        Summed over the features.
        """
        raise NotImplementedError

    def mean(self, params: Params) -> torch.Tensor:
        """Expected value of each feature (counts at the decoded library, or a probability)."""
        return params["mean"]

    def sample(self, params: Params) -> torch.Tensor:
        """New counts drawn from the decoded distribution (no gradient)."""
        raise NotImplementedError


#: The names of :data:`LIKELIHOODS`, for type hints.
LikelihoodName = Literal["nb", "zinb", "poisson", "bernoulli"]

#: Registered likelihoods: name -> class.
LIKELIHOODS: dict[str, type[Likelihood]] = {}


def register_likelihood(cls: type[Likelihood]) -> type[Likelihood]:
    """Class decorator: make ``cls`` available as ``likelihoods={...: cls.name}``."""
    LIKELIHOODS[cls.name] = cls
    return cls


def get_likelihood(likelihood: str | Likelihood) -> Likelihood:
    """The likelihood object registered as ``likelihood`` (objects pass through)."""
    if isinstance(likelihood, Likelihood):
        return likelihood
    return LIKELIHOODS[check_choice("likelihood", likelihood, LIKELIHOODS)]()


def _softmax_mean(logits: torch.Tensor, library: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1) * library[:, None]


def measured_entries(
    x: torch.Tensor, params: Params, mean: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Dense ``x`` (and ``mean``) with finite stand-ins at unmeasured entries, and the mask.

    ``params["feature_mask"]`` (cells x features, ``True`` = measured; absent: all measured)
    comes from the decoder with feature masks. Unmeasured entries get count 0 and mean 1, so
    their terms and gradients stay finite before :func:`masked_feature_sum` drops them.
    """
    x, mask = to_dense(x), params.get("feature_mask")
    if mask is None:
        return x, mean, None
    x = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
    if mean is not None:
        mean = torch.where(mask, mean, torch.ones((), dtype=mean.dtype, device=mean.device))
    return x, mean, mask


def masked_feature_sum(terms: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-cell sum of per-feature ``terms`` over the features each cell measured."""
    if mask is None:
        return terms.sum(-1)
    return torch.where(mask, terms, torch.zeros((), dtype=terms.dtype, device=terms.device)).sum(
        -1
    )


@register_likelihood
class NBLikelihood(Likelihood):
    """Negative binomial with mean ``softmax(logits) * library``.

    Its inverse dispersion ``exp(log_theta)`` is learnt per batch and feature.
    """

    name = "nb"
    batch_parameters: ClassVar[Mapping[str, float]] = {"log_theta": 0.0}

    def parameters(self, logits, library, batch_index, batch_parameters) -> Params:
        return {
            "logits": logits,
            "mean": _softmax_mean(logits, library),
            "theta": F.embedding(batch_index, torch.exp(batch_parameters["log_theta"])),
        }

    def distribution(self, params: Params) -> NegativeBinomial:
        """The scvi-tools distribution of ``params``."""
        return NegativeBinomial(mu=params["mean"], theta=params["theta"])

    def negative_log_likelihood(self, x, params) -> torch.Tensor:
        x, mean, mask = measured_entries(x, params, params["mean"])
        return -masked_feature_sum(self.distribution({**params, "mean": mean}).log_prob(x), mask)

    def sample(self, params) -> torch.Tensor:
        with torch.no_grad():
            clamped = {**params, "mean": params["mean"].clamp_min(1e-8)}
            return self.distribution(clamped).sample()


@register_likelihood
class ZINBLikelihood(NBLikelihood):
    """NB with batch-specific per-feature zero-inflation logits (``zi_logits``, start at -2)."""

    name = "zinb"
    batch_parameters: ClassVar[Mapping[str, float]] = {"log_theta": 0.0, "zi_logits": -2.0}

    def parameters(self, logits, library, batch_index, batch_parameters) -> Params:
        params = super().parameters(logits, library, batch_index, batch_parameters)
        params["zi_logits"] = F.embedding(batch_index, batch_parameters["zi_logits"])
        return params

    def distribution(self, params: Params) -> ZeroInflatedNegativeBinomial:
        return ZeroInflatedNegativeBinomial(
            mu=params["mean"], theta=params["theta"], zi_logits=params["zi_logits"]
        )

    def mean(self, params) -> torch.Tensor:
        """The NB mean (the expression level, as scvi-tools' ZINB ``px_scale``)."""
        return params["mean"]


@register_likelihood
class PoissonLikelihood(Likelihood):
    """Poisson with rate ``softmax(logits) * library`` (e.g. ATAC fragment counts, as PoissonVI)."""

    name = "poisson"

    def parameters(self, logits, library, batch_index, batch_parameters) -> Params:
        return {"logits": logits, "mean": _softmax_mean(logits, library)}

    def negative_log_likelihood(self, x, params) -> torch.Tensor:
        x, mean, mask = measured_entries(x, params, params["mean"])
        return -masked_feature_sum(torch.distributions.Poisson(mean).log_prob(x), mask)

    def sample(self, params) -> torch.Tensor:
        with torch.no_grad():
            return torch.poisson(params["mean"])


@register_likelihood
class BernoulliLikelihood(Likelihood):
    """Bernoulli on ``x > 0``: accessibility probability ``sigmoid(logits)``.

    The logits include ``log(library / reference)``, where ``library`` counts the cell's open
    features.
    """

    name = "bernoulli"
    binary = True
    column_subsets = True

    def cell_library(self, counts) -> np.ndarray:
        """Open features per cell."""
        return np.diff(sp.csr_matrix(counts).indptr)

    def initial_bias(self, counts, rows=None, n_measuring=None) -> torch.Tensor:
        """``logit`` of the (smoothed) fraction of ``rows`` in which each feature is open."""
        n_cells = np.count_nonzero(rows_mask(counts, rows)) if n_measuring is None else n_measuring
        fraction = (column_nonzeros(counts, rows) + 0.5) / (n_cells + 1.0)
        return torch.as_tensor(np.log(fraction) - np.log1p(-fraction), dtype=torch.float32)

    def default_decoding_library(self, reference: float) -> float:
        """A typical cell's number of open features: decoded values are probabilities."""
        return reference

    def differential_defaults(self, kind: str) -> DifferentialDefaults:
        """Accessibility probabilities of a typical cell, their difference, delta 0.05 (PeakVI)."""
        return DifferentialDefaults("difference", 0.05, None, 0.0)

    def library_size(self, x) -> torch.Tensor:
        return row_nnz(x)

    def logit_offset(self, library, log_library_reference) -> torch.Tensor:
        return torch.log(library.clamp(min=1.0)) - log_library_reference

    def parameters(self, logits, library, batch_index, batch_parameters) -> Params:
        return {"logits": logits}

    def negative_log_likelihood(self, x, params) -> torch.Tensor:
        """``sum_j softplus(l_j) - sum_{j: x_j > 0} l_j``: a sparse ``x`` is never densified.

        With ``params["columns"]`` (sorted feature indices that include every feature open in
        ``x``; see :func:`~mosaicvi.nn._feature_sampling.sample_feature_columns`), the logits hold
        only those features and the first sum is weighted by ``params["column_weight"]``. With
        ``params["weighted_open"]`` (a fixed-size sample) the columns may leave open features
        out, which then contribute nothing, and the weights apply to both sums.
        """
        logits, columns = params["logits"], params.get("columns")
        column_weight, mask = params.get("column_weight"), params.get("feature_mask")
        weighted_open = columns is not None and params.get("weighted_open", False)
        terms = F.softplus(logits)
        if mask is not None:  # columns unmeasured by a cell's batch (feature masks)
            terms = torch.where(mask, terms, torch.zeros((), dtype=terms.dtype))
        nll = terms.sum(-1) if column_weight is None else terms @ column_weight.to(terms.dtype)
        if is_sparse(x):
            rows = row_ids(x)
            cols = x.col_indices()
            open_ = x.values() > 0
            if columns is not None:
                cols = torch.searchsorted(columns, cols)
            if weighted_open:
                cols = cols.clamp(max=columns.shape[0] - 1)
                open_ = open_ & (columns[cols] == x.col_indices())
            if mask is not None:
                open_ = open_ & mask[rows, cols]
            observed = logits[rows, cols] * open_.to(logits.dtype)
            if weighted_open:
                observed = observed * column_weight.to(logits.dtype)[cols]
            return nll.index_add(0, rows, -observed)
        if columns is not None:
            x = x[:, columns]
        open_ = x > 0 if mask is None else (x > 0) & mask
        observed = open_.to(logits.dtype) * logits
        if weighted_open:
            observed = observed * column_weight.to(logits.dtype)
        return nll - observed.sum(-1)

    def mean(self, params) -> torch.Tensor:
        return torch.sigmoid(params["logits"])

    def sample(self, params) -> torch.Tensor:
        with torch.no_grad():
            probability = self.mean(params)
            return (torch.rand_like(probability) < probability).to(probability.dtype)
