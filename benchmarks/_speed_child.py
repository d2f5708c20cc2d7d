"""One speed measurement in its own process (started by ``run.py --task speed``, ``tasks/speed.py``).

Builds the synthetic mosaic (or reads it, ``--data``), trains one model for a warm-up epoch plus ``--epochs`` timed epochs
(no validation, no early stopping) and writes one JSON record: cells/s over the timed epochs, the
sparse input size and the peak host RSS (``resource.getrusage``) and peak GPU memory of this
process.

Usage::

    python benchmarks/_speed_child.py --model mosaicvi --cells 10000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from lightning.pytorch.callbacks import Callback

import mosaicvi


class EpochTimer(Callback):
    """Wall time of each training epoch (data loading included)."""

    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """Start the clock."""
        self._sync()
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Stop the clock."""
        self._sync()
        self.seconds.append(time.perf_counter() - self._start)

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sparse_mb(matrices) -> float:
    """Bytes of CSR matrices (values, indices and row pointers), in MB."""
    total = 0
    for x in matrices:
        x = sp.csr_matrix(x)
        total += x.data.nbytes + x.indices.nbytes + x.indptr.nbytes
    return total / 2**20


def build_model(name: str, mdata, layout_name: str, **model_kwargs):
    """Set up ``mdata`` and create the model named ``name`` (``mosaicvi`` or ``multivi``)."""
    if name == "mosaicvi":
        mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
        return mosaicvi.MosaicVI(mdata, **model_kwargs), mdata
    import scvi
    from _data import zero_padded

    padded = zero_padded(mdata)
    scvi.model.MULTIVI.setup_mudata(
        padded, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"}
    )
    return scvi.model.MULTIVI(padded, **model_kwargs), padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["mosaicvi", "multivi"], required=True)
    parser.add_argument("--cells", type=int, required=True)
    parser.add_argument("--modalities", default="rna,atac")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--warmup-steps", type=int, default=0, help="warm up this many steps, not an epoch"
    )
    parser.add_argument(
        "--max-steps", type=int, default=-1, help="stop after this many steps (memory runs)"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="read the mosaic from this .h5mu (written by run.py --data-dir) instead of building "
        "it here, so that the peak RSS holds no transient of the generator",
    )
    parser.add_argument("--json", required=True)
    parser.add_argument("--model-kwargs", default="{}", help="JSON keyword arguments of the model")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import scvi

    scvi.settings.seed = args.seed
    record = {"model": args.model, "cells": args.cells, "modalities": args.modalities}
    record["rss_after_imports_mb"] = peak_rss_mb()
    start = time.perf_counter()
    if args.data is None:
        mdata = mosaicvi.data.synthetic_mosaic(
            args.cells, modalities=args.modalities.split(","), seed=args.seed
        )
    else:
        import mudata

        mdata = mudata.read_h5mu(args.data)
    record["build_s"] = time.perf_counter() - start
    record["data_source"] = "built in process" if args.data is None else "read from .h5mu"
    record["sparse_input_mb"] = sparse_mb(a.X for a in mdata.mod.values())
    record["rss_after_build_mb"] = peak_rss_mb()
    start = time.perf_counter()
    model, data = build_model(args.model, mdata, args.modalities, **json.loads(args.model_kwargs))
    record["setup_s"] = time.perf_counter() - start
    record["rss_after_setup_mb"] = peak_rss_mb()
    timer = EpochTimer()
    common = {
        "batch_size": args.batch_size,
        "train_size": 1.0,
        "early_stopping": False,
        "accelerator": args.accelerator,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    warmup_epochs = 1
    if args.warmup_steps > 0:
        # A short warm-up (first-step allocations, kernel selection) instead of a full epoch.
        model.train(max_epochs=1, max_steps=args.warmup_steps, **common)
        warmup_epochs = 0
        # scvi-tools leaves the module in evaluation mode after training, and Lightning >= 2.5
        # does not switch it back: without this, MULTIVI's timed run would train without
        # dropout (MosaicVI.train switches to training mode itself).
        if args.model == "multivi":
            model.module.train()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    model.train(
        max_epochs=warmup_epochs + args.epochs,
        callbacks=[timer],
        max_steps=args.max_steps,
        **common,
    )
    timed = timer.seconds[warmup_epochs:] or timer.seconds
    record["warmup_epoch_s"] = timer.seconds[0] if warmup_epochs else float("nan")
    record["warmup_steps"] = args.warmup_steps if not warmup_epochs else 0
    record["timed_epochs"] = len(timer.seconds) - warmup_epochs
    record["epoch_s"] = float(np.mean(timed))
    record["cells_per_s"] = args.cells / record["epoch_s"]
    if args.max_steps > 0 and args.max_steps * args.batch_size < args.cells:
        # A partial (warm-up) epoch: throughput of the steps that ran, not a full epoch.
        record["epoch_s"] = float("nan")
        record["cells_per_s"] = args.max_steps * args.batch_size / timer.seconds[-1]
        record["partial_steps"] = args.max_steps
    record["peak_rss_mb"] = peak_rss_mb()
    record["peak_gpu_mb"] = (
        torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan")
    )
    record["device"] = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available() and args.accelerator != "cpu"
        else "cpu"
    )
    record["torch_threads"] = torch.get_num_threads()
    record["load_avg_end"] = os.getloadavg()[0]
    with open(args.json, "w") as handle:
        json.dump(record, handle)


if __name__ == "__main__":
    main()
