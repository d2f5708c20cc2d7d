"""A cheap summary of what a model reads of its data, to detect edits that reach it after setup.

Setup copies each modality's counts into ``obsm`` (aligned to the global cell order), and the
model reads only those copies and the cell names. The summary (shape, hash of the cell names,
non-zeros and sum of each copy) is stored in the registry at setup and compared before training
and before every output. Editing a modality's ``X`` afterwards (normalising, log-transforming)
therefore changes nothing the model reads, unless the copy shares its arrays with ``X`` (setup
avoids copying counts that are already float32 CSR in the global cell order) and the edit writes
into them in place: then the summary differs and the check names the shared source.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from mudata import MuData

from mosaicvi._constants import PRESENCE_OBSM_KEY, modality_obsm_key

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd
    from anndata import AnnData


def _names_hash(names: pd.Index) -> str:
    return hashlib.sha1("\x00".join(map(str, names)).encode()).hexdigest()[:16]


def _matrix_summary(matrix) -> dict | None:
    """Shape, non-zeros and sum of an aligned copy (``None`` when it is missing)."""
    if matrix is None:
        return None
    if sp.issparse(matrix):
        nnz, total = int(matrix.nnz), float(np.sum(matrix.data, dtype=np.float64))
    else:
        values = np.asarray(matrix)
        nnz, total = int(np.count_nonzero(values)), float(np.sum(values, dtype=np.float64))
    return {"shape": [int(s) for s in matrix.shape], "counts": [nnz, total]}


def data_name(data: MuData | AnnData) -> str:
    """How messages name the data object: ``"mdata"`` or ``"adata"``."""
    return "mdata" if isinstance(data, MuData) else "adata"


def source_fingerprint(data: MuData | AnnData, setup_args: Mapping) -> dict[str, dict | None]:
    """Summary of what the model reads of ``data``, keyed by how a user names each part."""
    name = data_name(data)
    parts: dict[str, dict | None] = {name: {"cells": _names_hash(data.obs_names)}}
    presence = data.obsm.get(PRESENCE_OBSM_KEY)
    if presence is not None:
        measured = np.asarray(presence, dtype=bool).sum(axis=0).tolist()
        parts[f"{name}.obsm[{PRESENCE_OBSM_KEY!r}]"] = {"measured": measured}
    for m in setup_args["modalities"]:
        key = modality_obsm_key(m)
        parts[f"{name}.obsm[{key!r}]"] = _matrix_summary(data.obsm.get(key))
    return parts


def changes_since_setup(
    saved: Mapping[str, dict | None], current: Mapping[str, dict | None]
) -> list[str]:
    """What differs between two fingerprints, in words (empty when nothing changed)."""
    what = {"shape": "shape", "cells": "cells (obs_names)", "counts": "count values"}
    what["measured"] = "cells measured"
    changes = []
    for part, summary in saved.items():
        now = current.get(part)
        if summary is None or now is None:
            if summary is not now:
                changes.append(f"{part} is gone" if now is None else f"{part} is new")
            continue
        differing = [what[k] for k in summary if summary[k] != now.get(k)]
        if differing:
            changes.append(f"{part}: {', '.join(differing)} changed")
    return changes


def shared_sources(data: MuData | AnnData, setup_args: Mapping) -> dict[str, str]:
    """Fingerprint part of each aligned copy -> the user's matrix whose arrays it shares.

    The user's matrix is a modality's ``X`` or counts layer, named as in messages; an in-place
    edit of it (``X.data /= ...``) reaches the model's copy.
    """
    name = data_name(data)
    layers = setup_args.get("layers") if isinstance(data, MuData) else setup_args.get("layer")
    shared = {}
    for m in setup_args["modalities"]:
        key = modality_obsm_key(m)
        copy = data.obsm.get(key)
        if isinstance(data, MuData):
            if m not in data.mod:
                continue
            adata, where = data.mod[m], f"mdata.mod[{m!r}]"
            layer = layers.get(m) if isinstance(layers, dict) else layers
        else:
            adata, where, layer = data, "adata", layers
        source = adata.X if layer is None else adata.layers.get(layer)
        if sp.issparse(copy) and sp.issparse(source):
            if np.may_share_memory(copy.data, source.data):
                matrix = "X" if layer is None else f"layers[{layer!r}]"
                shared[f"{name}.obsm[{key!r}]"] = f"{where}.{matrix}"
    return shared
