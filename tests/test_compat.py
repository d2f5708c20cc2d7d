"""The version-independent helpers of mosaicvi._compat (mudata 0.3/0.4, scvi-tools logging)."""

from __future__ import annotations

import logging

import mudata
import pytest

import mosaicvi
from mosaicvi._compat import mudata_no_pull_on_update, quiet_obsm_column_names


def _pull_on_update():
    """The current pull_on_update option of whichever mudata is installed."""
    settings = getattr(mudata, "settings", None)
    if settings is not None and hasattr(settings, "override"):  # mudata >= 0.4
        return settings.pull_on_update
    from mudata._core.config import OPTIONS  # mudata 0.3

    return OPTIONS["pull_on_update"]


def test_no_pull_on_update_sets_and_restores():
    before = _pull_on_update()
    with mudata_no_pull_on_update():
        assert _pull_on_update() is False
    assert _pull_on_update() == before


def test_no_pull_on_update_restores_after_an_error():
    before = _pull_on_update()
    with pytest.raises(RuntimeError, match="boom"), mudata_no_pull_on_update():
        raise RuntimeError("boom")
    assert _pull_on_update() == before


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def arraylike_field_messages():
    """Messages scvi-tools' obsm-field logger emits during the test (at INFO and above)."""
    logger = logging.getLogger("scvi.data.fields._arraylike_field")
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_setup_does_not_log_obsm_column_names(synthetic_mosaic, arraylike_field_messages):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    assert not [m for m in arraylike_field_messages if "column names" in m]


def test_quiet_obsm_column_names_drops_only_those_lines(arraylike_field_messages):
    logger = logging.getLogger("scvi.data.fields._arraylike_field")
    with quiet_obsm_column_names():
        logger.info("Generating sequential column names")
        logger.info("Using column names from adata.uns['x']")
        logger.info("something else")
    logger.info("Generating sequential column names")
    assert arraylike_field_messages == ["something else", "Generating sequential column names"]
