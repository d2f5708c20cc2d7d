"""Two-process DDP on the CPU (gloo): sharded minibatches, replicated weights and graph, early stopping.

Lightning's "ddp" re-launches the running script for rank 1, so the training runs in a small
script (``tests/scripts/ddp_train.py``) in a subprocess; each rank writes a JSON record.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mosaicvi.train._labelled_splitter import DistributedLabelledBatchSampler

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


#: Rank 0's weights after each mode, to compare the device-resident runs with the reference.
_WEIGHTS: dict[str, float] = {}


@pytest.mark.parametrize("mode", ["plain", "labelled", "plain,resident", "labelled,resident"])
def test_two_process_ddp_on_cpu(tmp_path, mode):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    args = [sys.executable, str(SCRIPT), str(tmp_path), "ddp", *mode.split(",")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank, record in enumerate(ranks):
        assert record["rank"] == rank and record["world_size"] == 2
        assert record["is_trained"] and record["latent_finite"]
        # Early stopping (patience 2, an improvement threshold no epoch meets) stopped both
        # processes after the same 3 of 30 epochs.
        assert record["epochs"] == 3
    assert ranks[0]["history_epochs"] == 3
    # Each process trains on its share of the minibatches, not on all of them.
    assert ranks[0]["steps"] == ranks[1]["steps"]
    single_process_steps = math.ceil(ranks[0]["n_train"] / 32)
    assert ranks[0]["steps"] / 3 <= math.ceil(single_process_steps / 2)
    # Weights (synchronised updates) and graph buffers are identical on both processes.
    assert ranks[0]["parameters"] == pytest.approx(ranks[1]["parameters"], rel=1e-9)
    assert ranks[0]["buffers"] == ranks[1]["buffers"]
    # Device-resident data (``load_data_on_device=True``) draw the reference loader's shards:
    # the same weights as the reference run of the same mode (run before it in this module).
    _WEIGHTS[mode] = ranks[0]["parameters"]
    reference = mode.removesuffix(",resident")
    if reference != mode and reference in _WEIGHTS:
        assert _WEIGHTS[mode] == pytest.approx(_WEIGHTS[reference], rel=1e-6)


def test_labelled_sampler_shards_one_shared_shuffle():
    labelled = np.zeros(100, dtype=bool)
    labelled[::5] = True
    shards = [
        DistributedLabelledBatchSampler(labelled, 10, 0.2, num_replicas=2, rank=r, seed=3)
        for r in (0, 1)
    ]
    for sampler in shards:
        sampler.set_epoch(1)
    batches = [list(s) for s in shards]
    assert len(batches[0]) == len(batches[1]) == len(shards[0]) == 5  # 80 cells / 8 per batch
    unlabelled = [{i for b in bs for i in b if not labelled[i]} for bs in batches]
    assert not unlabelled[0] & unlabelled[1]
    assert unlabelled[0] | unlabelled[1] == set(np.flatnonzero(~labelled))
    assert all(sum(labelled[i] for i in b) == 2 for bs in batches for b in bs)
    shards[0].set_epoch(2)
    assert list(shards[0]) != batches[0]
