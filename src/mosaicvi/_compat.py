"""The one place where scvi-tools internals are imported (scvi-tools 1.4 and 1.5 both work).

Everything else in mosaicvi imports scvi-tools' public API only, or goes through this module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

try:  # public in scvi-tools 1.4 and 1.5
    from scvi.model.base import DifferentialComputation
except ImportError:  # pragma: no cover - a future scvi-tools that moves it
    from scvi.model.base._differential import DifferentialComputation

from scvi.model._utils import parse_device_args  # scvi-tools 1.4 and 1.5

try:
    from scvi.model.base._de_core import _fdr_de_prediction
except ImportError:  # pragma: no cover - same rule, written out (Boyeau et al. 2023)

    def _fdr_de_prediction(posterior_probas: pd.Series, fdr: float = 0.05) -> pd.Series:
        ordered = posterior_probas.sort_values(ascending=False)
        expected_fdr = (1.0 - ordered).cumsum() / (1.0 + np.arange(len(ordered)))
        chosen = pd.Series(False, index=ordered.index)
        chosen.iloc[: int((expected_fdr <= fdr).sum())] = True
        return chosen.loc[posterior_probas.index]


def fdr_de_prediction(proba_de: pd.Series, fdr: float) -> pd.Series:
    """scvi-tools' posterior expected-FDR rule: which features to call DE at target ``fdr``."""
    return _fdr_de_prediction(proba_de, fdr=fdr).astype(bool)


__all__ = ["DifferentialComputation", "fdr_de_prediction", "parse_device_args"]
