"""Importance-sampled marginal log-likelihood per cell (:meth:`MosaicVI.get_marginal_ll`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData
    from mudata import MuData


class MarginalLikelihoodMixin:
    """:meth:`get_marginal_ll` for :class:`~mosaicvi.MosaicVI`."""

    @torch.inference_mode()
    def get_marginal_ll(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_mc_samples: int = 100,
        batch_size: int | None = None,
        return_mean: bool = False,
        n_mc_samples_per_pass: int | None = None,
    ) -> np.ndarray | float:
        """Importance-sampled estimate of ``log p(x)`` of each cell, over the modalities it has.

        The proposal is the cell's fused posterior ``q(z | x)`` (whatever the fusion; mixtures
        are sampled stratified, ``n_mc_samples`` draws from each expert or subset), and

        ``log p(x) ~ log 1/S sum_s p(x_present | z_s) p(z_s) / q(z_s | x)``,

        where only the modalities the cell measured enter the likelihood, at its observed library
        sizes (and, with a guidance graph, the posterior mean of the feature embeddings). With the
        mixture prior, ``p(z)`` is itself estimated by importance sampling over its clusters and
        continuous code. The estimate is a stochastic lower bound of ``log p(x)`` that tightens
        with ``n_mc_samples`` and lies above the ELBO on average (in nats; higher is better). Use
        it to compare models on the same cells, e.g. trained with
        ``train(n_importance_samples=K)`` or not. Unlike scvi-tools' ``get_marginal_ll``, it
        returns one value per cell by default.

        Parameters
        ----------
        adata
            Data set up like the training data (default: the training data).
        indices
            Cells to use (default: all).
        n_mc_samples
            Importance samples per posterior component.
        batch_size
            Cells per minibatch (default: scvi-tools' setting).
        return_mean
            Return the mean over cells instead of one value per cell.
        n_mc_samples_per_pass
            Samples decoded at once (default: as many as keep about 4,096 decoded rows).

        Returns
        -------
        ``log p(x)`` estimates ``(n_cells,)``, in the order of ``indices`` (or their mean).

        Examples
        --------
        >>> import mosaicvi
        >>> mdata = mosaicvi.data.snareseq()
        >>> mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
        >>> model = mosaicvi.MosaicVI(mdata, fusion="moe")
        >>> model.train(max_epochs=5, n_importance_samples=5)  # doctest: +SKIP
        >>> log_px = model.get_marginal_ll(n_mc_samples=100)  # doctest: +SKIP
        >>> mdata.obs["log_px"] = log_px  # doctest: +SKIP
        """
        if isinstance(n_mc_samples, bool) or not isinstance(n_mc_samples, int) or n_mc_samples < 1:
            raise ValueError(f"`n_mc_samples` must be an integer >= 1, got {n_mc_samples!r}.")
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        was_training = self.module.training
        self.module.eval()  # no dropout, no modality drop-out; the mode is restored below
        try:
            values = [
                self.module.marginal_ll(
                    tensors, n_mc_samples=n_mc_samples, n_mc_samples_per_pass=n_mc_samples_per_pass
                ).cpu()
                for tensors in loader
            ]
        finally:
            self.module.train(was_training)
        log_px = torch.cat(values).numpy()
        return float(log_px.mean()) if return_mean else log_px
