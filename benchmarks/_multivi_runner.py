"""Train models for the benchmarks the same way: timed, fixed epochs, MULTIVI on padded data."""

from __future__ import annotations

import time

import mudata
import scvi


def train_timed(model, epochs: int, batch_size: int, **kwargs) -> tuple[float, float]:
    """Train for ``epochs`` without early stopping; return (seconds, training cells per second)."""
    start = time.perf_counter()
    model.train(max_epochs=epochs, batch_size=batch_size, early_stopping=False, **kwargs)
    seconds = time.perf_counter() - start
    n_train = len(model.train_indices)
    return seconds, epochs * n_train / seconds


def train_multivi(
    padded: mudata.MuData, epochs: int, batch_size: int, seed: int = 0
) -> tuple[scvi.model.MULTIVI, tuple[float, float]]:
    """scvi-tools MULTIVI on a zero-padded RNA + ATAC MuData, with its own defaults otherwise.

    ``padded`` comes from :func:`_mosaic_data.zero_padded` (MULTIVI's ``setup_mudata`` rejects
    unpaired data). Returns the trained model and :func:`train_timed`'s timing.
    """
    scvi.settings.seed = seed
    scvi.model.MULTIVI.setup_mudata(
        padded, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"}
    )
    model = scvi.model.MULTIVI(padded)
    return model, train_timed(model, epochs, batch_size)
