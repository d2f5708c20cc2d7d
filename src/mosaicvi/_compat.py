"""Version-specific code: scvi-tools internals (1.4 and 1.5), mudata (0.3, 0.4), anndata (0.12, 0.13).

Everything else in mosaicvi imports scvi-tools' public API only, or goes through this module.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import mudata
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Iterator

    from anndata import AnnData

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


def lightning_logs_this_step(trainer) -> bool:
    """Whether Lightning sends this step's logged values to the logger (``log_every_n_steps``).

    Reads the private ``trainer._logger_connector.should_update_logs`` (Lightning 2.x); ``True``
    when a Lightning version lacks it, i.e. the value is logged and may be dropped there.
    """
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True))


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


def layer_names(adata: AnnData) -> list[str]:
    """The names of the layers of ``adata``, without ``X``.

    anndata 0.13 lists ``X`` among the layers under the key ``None``; earlier versions do not.
    """
    return [key for key in adata.layers if key is not None]


#: The logger of scvi-tools' array-like (obsm) fields, which logs how it names the columns.
_ARRAYLIKE_FIELD_LOGGER = "scvi.data.fields._arraylike_field"
_COLUMN_NAME_MESSAGES = ("Generating sequential column names", "Using column names from")


class _DropColumnNameMessages(logging.Filter):
    """Drops scvi-tools' INFO lines on how the columns of an obsm field are named."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_COLUMN_NAME_MESSAGES)


@contextlib.contextmanager
def quiet_obsm_column_names() -> Iterator[None]:
    """Within the block, scvi-tools does not log how it names the columns of obsm fields.

    Registering an obsm field logs "Generating sequential column names" (a NumPy or sparse
    matrix) or "Using column names from ..." (a DataFrame) at INFO level. For mosaicvi's
    internal obsm entries (one count matrix per modality and the presence mask) these lines
    say nothing to the user, so they are dropped; the registry is the same as without the
    block. Only the record of these messages is dropped, nothing else scvi-tools logs.
    """
    logger = logging.getLogger(_ARRAYLIKE_FIELD_LOGGER)
    drop = _DropColumnNameMessages()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


__all__ = [
    "DifferentialComputation",
    "fdr_de_prediction",
    "layer_names",
    "mudata_no_pull_on_update",
    "parse_device_args",
    "quiet_obsm_column_names",
]
