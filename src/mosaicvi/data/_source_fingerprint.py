"""A cheap summary of the data a model was set up with, to detect edits made after setup.

Setup copies each modality's counts into ``mdata.obsm`` (aligned to the global cell order); if
the user then edits a modality, the model would silently train on, or encode, the stale copy.
The summary (shape, hashes of the cell and feature names, non-zeros and sum of the counts) is
stored in the registry at setup and compared before training and before every output.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from mudata import MuData

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd
    from anndata import AnnData


def _names_hash(names: pd.Index) -> str:
    return hashlib.sha1("\x00".join(map(str, names)).encode()).hexdigest()[:16]


def _summary(adata: AnnData, layer: str | None) -> dict:
    matrix = adata.X if layer is None else adata.layers.get(layer)
    if matrix is None or adata.isbacked:
        counts = None
    elif sp.issparse(matrix):
        counts = [int(matrix.nnz), float(np.sum(matrix.data, dtype=np.float64))]
    else:
        matrix = np.asarray(matrix)
        counts = [int(np.count_nonzero(matrix)), float(np.sum(matrix, dtype=np.float64))]
    return {
        "shape": [int(adata.n_obs), int(adata.n_vars)],
        "cells": _names_hash(adata.obs_names),
        "features": _names_hash(adata.var_names),
        "counts": counts,
    }


def source_fingerprint(data: MuData | AnnData, setup_args: Mapping) -> dict[str, dict]:
    """Summary of every part of ``data`` that setup read, keyed by how a user names it."""
    if isinstance(data, MuData):
        layers = setup_args.get("layers")
        parts = {"mdata": {"cells": _names_hash(data.obs_names)}}
        for m in setup_args["modalities"]:
            if m in data.mod:
                layer = layers.get(m) if isinstance(layers, dict) else layers
                parts[f"mdata.mod[{m!r}]"] = _summary(data.mod[m], layer)
        return parts
    return {"adata": _summary(data, setup_args.get("layer"))}


def changes_since_setup(saved: Mapping[str, dict], current: Mapping[str, dict]) -> list[str]:
    """What differs between two fingerprints, in words (empty when nothing changed)."""
    what = {"shape": "shape", "cells": "cells (obs_names)", "features": "features (var_names)"}
    what["counts"] = "count values"
    changes = []
    for part, summary in saved.items():
        now = current.get(part)
        if now is None:
            changes.append(f"{part} is gone")
            continue
        differing = [what[k] for k in summary if summary[k] != now.get(k)]
        if differing:
            changes.append(f"{part}: {', '.join(differing)} changed")
    return changes
