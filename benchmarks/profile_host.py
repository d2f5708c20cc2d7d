"""Per-step host time of MosaicVI training: the time outside forward, backward and optimiser step.

Trains MosaicVI on the synthetic SNARE-sized mosaic (as ``run.py --task speed``) for
``--warmup-steps`` then ``--steps`` timed steps and splits the mean wall time of a timed step
into the module's forward (inference, generative, loss), the backward pass, the optimiser
update, and the rest: data loading, logging, Lightning's loop, the loss check ("host").
On the CPU all work is synchronous, so the split is exact; on a GPU the forward, backward and
update are timed after a device synchronisation (which itself removes the overlap of host and
device work that the real run has), so use it there only to compare code versions.

Prints one JSON record (and appends it to ``--json`` when given). Which mosaicvi is measured
is the one on ``PYTHONPATH``: run it once per code version, in the same conditions, e.g.
``PYTHONPATH=src python benchmarks/profile_host.py --data /tmp/speeddata/...h5mu``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


class StepProfile(Callback):
    """Wall time of each training step and of its forward, backward and optimiser update."""

    def __init__(self, module: torch.nn.Module, sync: bool):
        self.sync = sync
        self.batch_starts: list[float] = []
        self.forward: list[float] = []
        self.backward: list[float] = []
        self.update: list[float] = []
        self._t = 0.0
        inner = module.forward

        def timed_forward(*args, **kwargs):
            start = self._now()
            out = inner(*args, **kwargs)
            self.forward.append(self._now() - start)
            return out

        module.forward = timed_forward

    def _now(self) -> float:
        if self.sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_start(self, trainer, pl_module):
        for optimizer in trainer.optimizers:
            optimizer.register_step_post_hook(self._after_update)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batch_starts.append(self._now())

    def on_before_backward(self, trainer, pl_module, loss):
        self._t = self._now()

    def on_after_backward(self, trainer, pl_module):
        self.backward.append(self._now() - self._t)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self._t = self._now()

    def _after_update(self, optimizer, args, kwargs):
        self.update.append(self._now() - self._t)


def time_loaders(model, args: argparse.Namespace) -> None:
    """Milliseconds per minibatch of each loader (both on ``--accelerator``'s device)."""
    from mosaicvi.train._data_splitter import SparseDataSplitter
    from mosaicvi.train._device_data import DeviceResidentData

    device = torch.device("cuda" if args.accelerator not in ("cpu",) else "cpu")
    record = {"label": args.label, "cells": model.adata.n_obs, "batch_size": args.batch_size}
    for round_ in (1, 2):
        for resident in (False, True):
            splitter = SparseDataSplitter(
                model.adata_manager,
                load_data_on_device=resident,
                load_sparse_tensor=True,
                batch_size=args.batch_size,
                train_size=1.0,
            )
            splitter.setup()
            if resident:  # outside a fit the splitter does not know the device
                splitter.resident = DeviceResidentData(model.adata_manager, device)
            batches = iter(splitter.train_dataloader())
            start = time.perf_counter()
            for _ in range(args.steps):
                batch = next(batches)
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            if device.type == "cuda":
                torch.cuda.synchronize()
            name = "resident" if resident else "reference"
            record[f"{name}_ms_r{round_}"] = 1e3 * (time.perf_counter() - start) / args.steps
    print(json.dumps(record), flush=True)
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help=".h5mu written by run.py --task speed --data-dir")
    parser.add_argument("--cells", type=int, default=2000, help="synthetic cells without --data")
    parser.add_argument("--modalities", default="rna,atac")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--load-data-on-device", default=None, help="True, False or auto")
    parser.add_argument(
        "--loader-only",
        action="store_true",
        help="time --steps minibatches of scvi-tools' loader and of the device-resident loader "
        "(twice each, alternating), without training",
    )
    parser.add_argument("--label", default="")
    parser.add_argument("--json", default=None, help="append the record to this file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import mudata
    import scvi
    from _speed_child import build_model

    import mosaicvi

    scvi.settings.seed = 0
    if args.data:
        mdata = mudata.read_h5mu(args.data)
    else:
        mdata = mosaicvi.data.synthetic_mosaic(
            args.cells, modalities=args.modalities.split(","), seed=0
        )
    model, _ = build_model("mosaicvi", mdata, args.modalities)
    if args.loader_only:
        return time_loaders(model, args)
    train = {
        "batch_size": args.batch_size,
        "train_size": 1.0,
        "early_stopping": False,
        "accelerator": args.accelerator,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    if args.load_data_on_device is not None:
        value = {"true": True, "false": False}.get(args.load_data_on_device.lower(), "auto")
        train["load_data_on_device"] = value
    profile = StepProfile(model.module, sync=args.accelerator != "cpu")
    total = args.warmup_steps + args.steps
    n_obs = mdata.n_obs
    model.train(
        max_epochs=-(-total * args.batch_size // n_obs),
        max_steps=total + 1,
        callbacks=[profile],
        **train,
    )
    w, n = args.warmup_steps, args.steps
    wall = (profile.batch_starts[w + n] - profile.batch_starts[w]) / n
    parts = {
        "forward_ms": 1e3 * float(np.mean(profile.forward[w : w + n])),
        "backward_ms": 1e3 * float(np.mean(profile.backward[w : w + n])),
        "update_ms": 1e3 * float(np.mean(profile.update[w : w + n])),
    }
    record = {
        "label": args.label,
        "mosaicvi": str(Path(mosaicvi.__file__).parent),
        "cells": n_obs,
        "batch_size": args.batch_size,
        "timed_steps": n,
        "load_data_on_device": args.load_data_on_device,
        "step_ms": 1e3 * wall,
        **parts,
        "host_ms": 1e3 * wall - sum(parts.values()),
        "cells_per_s": args.batch_size / wall,
        "torch_threads": torch.get_num_threads(),
        "load_avg": os.getloadavg()[0],
    }
    print(json.dumps(record), flush=True)
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
