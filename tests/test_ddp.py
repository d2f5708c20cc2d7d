"""Two-process DDP on the CPU (gloo): sharded minibatches and data, replicated weights, early stopping.

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
from mosaicvi.train._sharding import ShardBatchSampler

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


#: Rank 0's history keys after each mode, to compare the device-resident runs with the reference.
_HISTORY_KEYS: dict[str, list[str]] = {}


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
    # Device-resident data (``load_data_on_device=True``): each process holds its own shard of
    # the cells, about half of them (padding repeats at most one training and one validation
    # cell), and the shards cover every cell. Every minibatch drew only cells of its process's
    # shard (the resident data refuse others), and the history has the reference run's keys.
    _HISTORY_KEYS[mode] = ranks[0]["history_keys"]
    reference = mode.removesuffix(",resident")
    if reference == mode:
        assert ranks[0]["resident_rows"] is None
        return
    shards = [set(record["resident_rows"]) for record in ranks]
    n_obs = ranks[0]["n_obs"]
    assert all(n_obs / 2 <= len(shard) <= n_obs / 2 + 2 for shard in shards)
    assert len(shards[0] & shards[1]) <= 2
    assert shards[0] | shards[1] == set(range(n_obs))
    if reference in _HISTORY_KEYS:
        assert _HISTORY_KEYS[mode] == _HISTORY_KEYS[reference]


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


def test_shard_samplers_hold_fixed_disjoint_shards_reshuffled_each_epoch():
    shards = [ShardBatchSampler(101, 16, False, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    positions = [set(s.positions.tolist()) for s in shards]
    assert len(shards[0]) == len(shards[1]) == 4  # 51 cells each (one repeated as padding)
    assert len(positions[0]) == len(positions[1]) == 51
    assert len(positions[0] & positions[1]) <= 1
    assert positions[0] | positions[1] == set(range(101))
    first = [np.concatenate(list(s)) for s in shards]
    for sampler, drawn, shard in zip(shards, first, positions, strict=True):
        assert sorted(drawn.tolist()) == sorted(sampler.positions.tolist())  # each once
        sampler.set_epoch(1)
        again = np.concatenate(list(sampler))
        assert set(again.tolist()) == shard and not np.array_equal(again, drawn)


def test_sharded_labelled_sampler_keeps_the_labelled_share_within_its_shard():
    labelled = np.zeros(100, dtype=bool)
    labelled[::5] = True
    shards = [
        DistributedLabelledBatchSampler(
            labelled, 10, 0.2, num_replicas=2, rank=r, seed=3
        ).sharded()
        for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 5  # 40 unlabelled cells / 8 per batch
    batches = [list(s) for s in shards]
    drawn = [{i for b in bs for i in b} for bs in batches]
    for shard, cells in zip(shards, drawn, strict=True):
        assert cells <= set(shard.positions.tolist())
    assert all(sum(labelled[i] for i in b) == 2 for bs in batches for b in bs)
    unlabelled = [cells - set(np.flatnonzero(labelled)) for cells in drawn]
    assert not unlabelled[0] & unlabelled[1]
    assert unlabelled[0] | unlabelled[1] == set(np.flatnonzero(~labelled))
    labelled_shards = [set(s.labelled.tolist()) for s in shards]
    assert not labelled_shards[0] & labelled_shards[1]
