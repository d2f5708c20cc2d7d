"""Differential features between the populations two groups of cells were drawn from.

scvi-tools' ``"change"`` mode compares decoded values of *random cells* of the two groups: its
``proba_de`` is the probability that a cell of group 1 differs from a cell of group 2 by more
than ``delta``. That is a statement about these cells, not about the groups they came from, and
it is not calibrated as a group test: with ~200 cells per group, a null ATAC peak's open fraction
differs between the groups by up to ~0.1 by chance, the decoder reproduces that difference, and
at ``delta = 0.05`` a quarter of the calls at a 5 % target were false (issue 25).

The population test asks instead whether the *groups' means* differ by more than ``delta``:

1. the effect (log2 fold change or difference) of the two groups' decoded means;
2. its standard error from the sampling error of each group's mean over the cells that measured
   the modality (:func:`group_mean_standard_errors`), plus the model's own error of a decoded
   mean, estimated from how far the bulk of the features' effects spread beyond their sampling
   errors (:func:`null_spread`);
3. an empirical-Bayes prior on the true effects, fitted over all features of the modality: a
   point mass at zero and atoms on a grid, weighted by nonparametric maximum likelihood
   (Kiefer-Wolfowitz; Jiang & Zhang 2009); ``proba_de`` is each feature's posterior probability
   that its true effect exceeds ``delta`` in size (:func:`empirical_bayes_probabilities`).

Selecting features by posterior expected FDR (``is_de_fdr_<target>``) is then calibrated when most
features are null, which the prior learns from the data rather than assumes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import brentq
from scipy.special import ndtri

from mosaicvi.nn._column_statistics import measured_counts

#: Pseudo-observations of the Agresti-Coull interval: a group that never opened a peak still
#: gets the standard error of ~2 opens in n + 4 cells, not zero.
_BINARY_PSEUDO = 2.0
#: Weight of the prior (Dirichlet pseudo-count) towards the point mass at zero, as ashr's
#: ``nullweight`` default: more conservative when few features are tested.
NULL_WEIGHT = 10.0
#: Most atoms of the nonparametric prior's grid (bounds memory and time with many features).
MAX_ATOMS = 400
#: Most features the prior is fitted on (a seeded subset beyond; every feature gets a posterior).
MAX_FIT_FEATURES = 5000


def group_mean_standard_errors(
    counts: sp.csr_matrix,
    rows: np.ndarray,
    binary: bool,
    feature_mask: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per feature, the standard error of one group's mean over its measuring cells ``rows``.

    Counts: of the mean proportion ``x / library`` (libraries over the measured features), the
    larger of the sample variance over ``n`` cells and the Poisson variance of the pooled counts
    with one extra count, ``(K + 1) / (sum of libraries)^2``, so features a small group never
    expressed are uncertain rather than exact. Binary (accessibility): of the open fraction,
    Agresti-Coull (``(k + 2) / (n + 4)``). With ``feature_mask``, each feature's cells are those
    whose batch measured it. NaN for features no cell of ``rows`` measured.
    """
    x = sp.csr_matrix(counts[rows], dtype=np.float64)
    n_features = x.shape[1]
    if feature_mask is not None:
        codes, table = feature_mask
        x = measured_counts(x, codes[rows], table)
        measuring = np.asarray(table, dtype=bool)[codes[rows]]
    else:
        measuring = None
    n = np.full(n_features, float(len(rows))) if measuring is None else measuring.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if binary:
            opened = np.bincount(x.indices[x.data != 0], minlength=n_features)
            fraction = (opened + _BINARY_PSEUDO) / (n + 2 * _BINARY_PSEUDO)
            variance = fraction * (1.0 - fraction) / (n + 2 * _BINARY_PSEUDO)
        else:
            library = np.asarray(x.sum(1)).ravel()
            scaling = np.divide(1.0, library, out=np.zeros_like(library), where=library > 0)
            proportions = sp.csr_matrix(x.multiply(scaling[:, None]))
            total = np.asarray(proportions.sum(0)).ravel()
            squares = np.asarray(proportions.multiply(proportions).sum(0)).ravel()
            mean = total / n
            sample = (squares - n * mean**2) / np.maximum(n - 1.0, 1.0) / n
            sample = np.where(n > 1, np.maximum(sample, 0.0), 0.0)
            libraries = library.sum() if measuring is None else library @ measuring
            pooled = (np.asarray(x.sum(0)).ravel() + 1.0) / libraries**2
            variance = np.maximum(sample, pooled)
    return np.where(n > 0, np.sqrt(variance), np.nan)


def effect_and_standard_error(
    mean1: np.ndarray,
    mean2: np.ndarray,
    se1: np.ndarray,
    se2: np.ndarray,
    change: str,
    pseudocounts: float,
    unit: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The effect of two groups' decoded means and its standard error (delta method).

    ``se1``/``se2`` are in proportion units (probabilities for binary data); ``unit`` converts
    them to the decoded values' units (the library they are decoded at; 1 for binary data).
    ``change``: ``"difference"`` (``mean1 - mean2``) or ``"log-fold"``
    (``log2(mean1 + pseudocounts) - log2(mean2 + pseudocounts)``).
    """
    se1, se2 = unit * se1, unit * se2
    if change == "difference":
        return mean1 - mean2, np.sqrt(se1**2 + se2**2)
    shifted1, shifted2 = mean1 + pseudocounts, mean2 + pseudocounts
    effect = np.log2(shifted1) - np.log2(shifted2)
    return effect, np.sqrt((se1 / shifted1) ** 2 + (se2 / shifted2) ** 2) / np.log(2.0)


def null_spread(effect: np.ndarray, se: np.ndarray) -> float:
    """How far the bulk of the features' effects spread beyond their standard errors (``tau``).

    The model's decoded group means carry an error of their own besides the groups' sampling
    error; ``tau``, the same for every feature, is chosen so that the median of
    ``|effect| / sqrt(se^2 + tau^2)`` is the normal's 0.6745, as for null features (a random-effects
    heterogeneity estimate, taken around zero so that a shift of every feature counts too). The
    features beyond 3 of the resulting ``z`` (clearly differential ones) are left out and ``tau``
    recomputed until it settles. 0 when the standard errors explain the spread.
    """
    usable = np.isfinite(effect) & np.isfinite(se)
    d, s = np.abs(effect[usable]), se[usable]
    target = float(ndtri(0.75))  # the median of |z| for a standard normal z, 0.6745
    tau = 0.0
    for _ in range(10):
        if d.size == 0:
            return tau

        def excess(t: float, d=d, s=s) -> float:
            return float(np.median(d / np.sqrt(s**2 + t**2))) - target

        updated = 0.0 if excess(0.0) <= 0 else brentq(excess, 0.0, float(d.max()) + 1e-12)
        keep = d / np.sqrt(s**2 + updated**2) <= 3.0
        d, s = d[keep], s[keep]
        if np.isclose(updated, tau, rtol=1e-3, atol=1e-12):
            return updated
        tau = updated
    return tau


def empirical_bayes_probabilities(
    effect: np.ndarray,
    se: np.ndarray,
    delta: float,
    null_weight: float = NULL_WEIGHT,
    max_iter: int = 500,
) -> np.ndarray:
    """Posterior probability that each true effect exceeds ``delta`` in size (nonparametric prior).

    The true effects get the prior ``pi_0 * point mass at 0 + sum_k pi_k * point mass at
    theta_k`` on a grid of atoms ``theta_k`` spanning the observed effects (spacing a quarter of a
    small standard error, at most :data:`MAX_ATOMS` atoms); the weights are the nonparametric
    maximum-likelihood estimate (Kiefer-Wolfowitz; Jiang & Zhang, Ann. Stat. 2009; Koenker &
    Mizera, JASA 2014), fitted by EM (SQUAREM-accelerated) on at most :data:`MAX_FIT_FEATURES`
    features (a seeded subset) with a Dirichlet pseudo-count ``null_weight - 1`` on ``pi_0``.
    Each feature's posterior over the atoms gives ``P(|effect| > delta)``. NaN where ``effect``
    or ``se`` is.

    Unlike a unimodal prior (a point mass plus zero-centred normals, Stephens' ash), the
    estimate puts no prior mass near zero unless the data ask for it: when the differential
    features' effects are large, a null feature whose chance difference reaches 3 standard errors
    is not half-believed (on planted mosaics ash called such features and doubled the FDR;
    ``docs/benchmark_notes.md``).
    """
    effect = np.asarray(effect, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    usable = np.isfinite(effect) & np.isfinite(se) & (se > 0)
    result = np.full(effect.shape, np.nan)
    if not usable.any():
        return result
    d, s = effect[usable], se[usable]
    limit = float(np.abs(d).max()) + float(s.max())
    spacing = max(float(np.quantile(s, 0.05)) / 4.0, 2.0 * limit / MAX_ATOMS)
    half = np.arange(spacing, limit + spacing, spacing)
    atoms = np.concatenate([-half[::-1], [0.0], half])
    null = len(half)

    def likelihood(rows: np.ndarray) -> np.ndarray:  # scaled per feature: its largest entry 1
        log_lik = -0.5 * ((d[rows, None] - atoms[None, :]) / s[rows, None]) ** 2
        return np.exp(log_lik - log_lik.max(1, keepdims=True))

    fit_rows = np.arange(len(d))
    if len(d) > MAX_FIT_FEATURES:
        fit_rows = np.sort(
            np.random.default_rng(0).choice(len(d), MAX_FIT_FEATURES, replace=False)
        )
    fit_lik = likelihood(fit_rows)
    pseudo = np.zeros(len(atoms))
    pseudo[null] = null_weight - 1.0

    def em_step(weights: np.ndarray) -> np.ndarray:
        updated = weights * (fit_lik.T @ (1.0 / np.maximum(fit_lik @ weights, 1e-300))) + pseudo
        return updated / updated.sum()

    def objective(weights: np.ndarray) -> float:  # penalised log-likelihood, up to a constant
        log_weights = np.log(np.maximum(weights, 1e-300))
        return float(np.log(np.maximum(fit_lik @ weights, 1e-300)).sum() + pseudo @ log_weights)

    weights = np.full(len(atoms), 0.5 / (len(atoms) - 1))
    weights[null] = 0.5
    value = objective(weights)
    # EM accelerated by SQUAREM (Varadhan & Roland, Scand. J. Stat. 2008)
    for _ in range(max_iter):
        once = em_step(weights)
        twice = em_step(once)
        step, curvature = once - weights, twice - 2.0 * once + weights
        alpha = min(-np.sqrt((step @ step) / max(float(curvature @ curvature), 1e-300)), -1.0)
        extrapolated = np.maximum(weights - 2.0 * alpha * step + alpha**2 * curvature, 0.0)
        candidate = em_step(extrapolated / extrapolated.sum())
        updated, plain = objective(candidate), objective(twice)
        if not updated >= plain:  # the extrapolation overshot (or is NaN): the plain EM step
            candidate, updated = twice, plain
        converged = updated - value < 1e-9 * len(fit_rows)
        weights, value = candidate, updated
        if converged:
            break
    beyond = np.abs(atoms) > delta
    probabilities = np.empty(len(d))
    for start in range(0, len(d), MAX_FIT_FEATURES):
        rows = np.arange(start, min(start + MAX_FIT_FEATURES, len(d)))
        joint = likelihood(rows) * weights
        probabilities[rows] = joint[:, beyond].sum(1) / joint.sum(1)
    result[usable] = probabilities
    return result


@dataclass(frozen=True)
class PopulationTest:
    """The population test of one modality's comparison (see the module docstring).

    Attributes
    ----------
    change, delta, pseudocounts
        The effect (``"log-fold"`` or ``"difference"``), the smallest effect that counts and the
        log fold change's offset, as the cell-level test uses them.
    unit
        The library the decoded values are at (1 for binary data: probabilities).
    binary
        Whether the modality's likelihood is binary (accessibility).
    """

    change: str
    delta: float
    pseudocounts: float
    unit: float
    binary: bool

    def apply(
        self,
        result: pd.DataFrame,
        counts: sp.csr_matrix,
        rows: list[np.ndarray],
        feature_mask: tuple[np.ndarray, np.ndarray] | None,
        comparison: str,
    ) -> pd.DataFrame:
        """``result`` (scvi-tools' Bayes-factor table) with population-level ``proba_de``.

        ``scale1``/``scale2`` (the groups' decoded means) give the effect; ``rows`` are the
        measuring cells of each group. Adds ``effect`` and ``effect_se``; ``proba_not_de`` is
        ``1 - proba_de``. A group without a measuring cell has no sampling error to go by: its
        comparison keeps the cell-level ``proba_de``, with a warning.
        """
        if min(len(r) for r in rows) == 0:
            warnings.warn(
                f"In {comparison} a group has no cell that measured the modality, so its mean "
                "has no sampling error to test against: `proba_de` compares cells (as "
                "`compare='cells'`) for this comparison.",
                UserWarning,
                stacklevel=4,
            )
            return result
        se1, se2 = (group_mean_standard_errors(counts, r, self.binary, feature_mask) for r in rows)
        mean1, mean2 = result["scale1"].to_numpy(), result["scale2"].to_numpy()
        effect, se = effect_and_standard_error(
            mean1, mean2, se1, se2, self.change, self.pseudocounts, self.unit
        )
        se = np.sqrt(se**2 + null_spread(effect, se) ** 2)
        proba = empirical_bayes_probabilities(effect, se, self.delta)
        proba = np.nan_to_num(proba, nan=0.0)  # a feature no group cell measured: not called
        return result.assign(proba_de=proba, proba_not_de=1.0 - proba, effect=effect, effect_se=se)
