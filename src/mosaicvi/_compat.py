"""Version-specific code: scvi-tools internals (1.4 and 1.5) and mudata (0.3 and 0.4).

Everything else in mosaicvi imports scvi-tools' public API only, or goes through this module.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import mudata
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Iterator

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


@contextlib.contextmanager
def mudata_no_pull_on_update() -> Iterator[None]:
    """Within the block, building or updating a MuData does not pull modality columns.

    mudata 0.3 has ``mudata.set_options(pull_on_update=...)``; mudata 0.4 removed it for a
    settings object, ``mudata.settings.override(pull_on_update=...)`` (its default there is
    already ``False``). The previous value is restored on exit either way.
    """
    settings = getattr(mudata, "settings", None)
    if settings is not None and hasattr(settings, "override"):  # mudata >= 0.4
        with settings.override(pull_on_update=False):
            yield
    else:  # mudata 0.3
        with mudata.set_options(pull_on_update=False):
            yield


__all__ = [
    "DifferentialComputation",
    "fdr_de_prediction",
    "mudata_no_pull_on_update",
    "parse_device_args",
]
