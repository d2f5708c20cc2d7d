"""Label predictions and cluster probabilities of a trained MosaicVI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scvi import REGISTRY_KEYS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData
    from mudata import MuData


class LabelsMixin:
    """:meth:`predict` (semi-supervised labels) and :meth:`get_cluster_probabilities`."""

    @property
    def label_classes(self) -> list[str]:
        """The label classes the model is trained on (empty without ``unlabeled_category``)."""
        state = self.adata_manager.get_state_registry(REGISTRY_KEYS.LABELS_KEY)
        if "unlabeled_category" not in state:
            return []
        return [str(c) for c in state.categorical_mapping[:-1]]

    @torch.inference_mode()
    def _class_probabilities(
        self,
        adata: MuData | AnnData | None,
        indices: Sequence[int] | None,
        batch_size: int | None,
    ) -> tuple[np.ndarray, pd.Index]:
        """Softmax of the module's class (or cluster) logits at each cell's posterior mean."""
        self._check_if_trained(warn=False)
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        probabilities = []
        for tensors in loader:
            outputs = self.module.inference(**self.module._get_inference_input(tensors))
            logits = self.module.class_logits(outputs["qz"].loc)
            probabilities.append(torch.softmax(logits, dim=-1).cpu().numpy())
        obs_names = adata.obs_names if indices is None else adata.obs_names[np.asarray(indices)]
        return np.concatenate(probabilities), obs_names

    def predict(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        soft: bool = False,
        batch_size: int | None = None,
    ) -> pd.Series | pd.DataFrame:
        """Predicted label of every cell, from any modalities it has (semi-supervised models).

        The model must have been set up with ``labels_key`` and ``unlabeled_category``; the
        classifier ``q(label | z)`` (the mixture prior's ``q(c | z)``) is read at each cell's
        posterior mean, so cells of batches that share no modality with the labelled ones are
        labelled too.

        Parameters
        ----------
        adata
            Data registered like the training data (default: the training data).
        indices
            Cells to use (default: all).
        soft
            Return the probability of every class instead of the most probable one.
        batch_size
            Minibatch size (default: scvi-tools' setting).

        Returns
        -------
        A Series of labels indexed by cell, or with ``soft`` a DataFrame (cells x classes) whose
        rows sum to 1.

        Examples
        --------
        >>> mosaicvi.MosaicVI.setup_mudata(
        ...     mdata, batch_key="batch", labels_key="cell_type", unlabeled_category="unknown"
        ... )  # doctest: +SKIP
        >>> model = mosaicvi.MosaicVI(mdata)  # doctest: +SKIP
        >>> model.train()  # doctest: +SKIP
        >>> mdata.obs["predicted"] = model.predict()  # doctest: +SKIP
        """
        classes = self.label_classes
        if not classes:
            raise ValueError(
                "`predict` needs a model trained with labels: set the data up with `labels_key` "
                "and `unlabeled_category` (the value of unlabelled cells), then train a new model."
            )
        probabilities, obs_names = self._class_probabilities(adata, indices, batch_size)
        probabilities = probabilities[:, : len(classes)]
        probabilities = probabilities / probabilities.sum(1, keepdims=True)
        if soft:
            return pd.DataFrame(probabilities, index=obs_names, columns=classes)
        predicted = np.asarray(classes, dtype=object)[probabilities.argmax(1)]
        return pd.Series(
            pd.Categorical(predicted, categories=classes), index=obs_names, name="prediction"
        )

    def get_cluster_probabilities(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """``q(c | z)`` of the mixture prior at each cell's posterior mean.

        Parameters
        ----------
        adata
            Data registered like the training data (default: the training data).
        indices
            Cells to use (default: all).
        batch_size
            Minibatch size (default: scvi-tools' setting).

        Returns
        -------
        DataFrame (cells x clusters) whose rows sum to 1. With labels, the first clusters are the
        label classes (named after them); the others are ``cluster_<k>``.

        Examples
        --------
        >>> model = mosaicvi.MosaicVI(mdata, prior="mixture", n_clusters=15)  # doctest: +SKIP
        >>> model.train()  # doctest: +SKIP
        >>> mdata.obs["cluster"] = model.get_cluster_probabilities().idxmax(1)  # doctest: +SKIP
        """
        if self.module.prior_name != "mixture":
            raise ValueError(
                "Cluster probabilities come from the mixture prior; create the model with "
                "`MosaicVI(mdata, prior='mixture', n_clusters=...)`."
            )
        probabilities, obs_names = self._class_probabilities(adata, indices, batch_size)
        classes = self.label_classes
        columns = classes + [f"cluster_{k}" for k in range(len(classes), probabilities.shape[1])]
        return pd.DataFrame(probabilities, index=obs_names, columns=columns)
