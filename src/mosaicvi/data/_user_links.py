"""User-supplied feature links (link matrices or edge lists) for the guidance graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from collections.abc import Mapping

    LinkSpec = sp.spmatrix | sp.sparray | np.ndarray | pd.DataFrame


def _matrix_links(
    matrix: LinkSpec, shape: tuple[int, int], pair: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nonzeros of a (n_features(a), n_features(b)) matrix as (row, col, signed value)."""
    if not (sp.issparse(matrix) or isinstance(matrix, np.ndarray | np.matrix)):
        raise TypeError(
            f"`links[{pair!r}]` must be a scipy sparse matrix, a numpy array or a DataFrame with "
            f"columns source/target[/weight/sign], not {type(matrix).__name__}."
        )
    if matrix.shape != shape:
        hint = " (transpose it with `.T`)" if matrix.shape == shape[::-1] else ""
        raise ValueError(
            f"`links[{pair!r}]` has shape {matrix.shape}; it must be (features of {pair[0]!r}, "
            f"features of {pair[1]!r}) = {shape}{hint}."
        )
    coo = sp.coo_matrix(matrix)
    values = np.asarray(coo.data, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`links[{pair!r}]` contains NaN or infinite values.")
    keep = values != 0
    return coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64), values[keep]


def _frame_links(
    frame: pd.DataFrame, sources: pd.Index, targets: pd.Index, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge list (source, target[, weight, sign]) as (row, col, signed value)."""
    missing = [c for c in ("source", "target") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{where} needs columns source and target (and optionally weight and sign); it has "
            f"{list(frame.columns)}."
        )
    rows = sources.get_indexer(frame["source"].astype(str))
    cols = targets.get_indexer(frame["target"].astype(str))
    for label, found, column in (("source", rows, "source"), ("target", cols, "target")):
        if np.any(found < 0):
            unknown = frame[column][found < 0].astype(str).unique()[:5].tolist()
            raise ValueError(
                f"{where}: {int((found < 0).sum())} {label} names are not features of the "
                f"modalities they should belong to (e.g. {unknown})."
            )
    weight = (
        pd.to_numeric(frame["weight"], errors="coerce").to_numpy(dtype=np.float64)
        if "weight" in frame.columns
        else np.ones(len(frame))
    )
    sign = (
        pd.to_numeric(frame["sign"], errors="coerce").to_numpy(dtype=np.float64)
        if "sign" in frame.columns
        else np.ones(len(frame))
    )
    if not np.all(np.isfinite(weight)):
        raise ValueError(f"{where}: `weight` has missing or non-numeric values.")
    if not np.all(np.isin(sign, (-1.0, 1.0))):
        raise ValueError(f"{where}: `sign` must be +1 or -1.")
    pairs = pd.DataFrame({"row": rows, "col": cols})
    if pairs.duplicated().any():
        example = frame.loc[pairs.duplicated().to_numpy(), ["source", "target"]].iloc[0].tolist()
        raise ValueError(f"{where} lists the edge {example} more than once.")
    values = weight * sign
    keep = values != 0
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64), values[keep]


def user_links(
    links: Mapping[tuple[str, str], LinkSpec] | pd.DataFrame,
    features: dict[str, pd.Index],
    offsets: dict[str, int],
    all_names: pd.Index,
    modality_of: np.ndarray,
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], set[frozenset[str]]]:
    """User links as global (row, col, signed value) triples, and the modality pairs they cover."""
    parts, covered = [], set()
    if isinstance(links, pd.DataFrame):
        rows, cols, values = _frame_links(links, all_names, all_names, "`links`")
        parts.append((rows, cols, values))
        covered |= {
            frozenset((a, b)) for a, b in zip(modality_of[rows], modality_of[cols], strict=True)
        }
        return parts, covered
    if not hasattr(links, "items"):
        raise TypeError(
            "`links` must be a dict {(modality_a, modality_b): matrix or DataFrame} or a "
            f"DataFrame with columns source/target[/weight/sign], not {type(links).__name__}."
        )
    for pair, spec in links.items():
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(
                f"`links` keys must be (modality_a, modality_b) pairs, e.g. ('rna', 'atac'); "
                f"got {pair!r}."
            )
        a, b = pair
        unknown = [m for m in pair if m not in features]
        if unknown:
            raise ValueError(
                f"`links` key {pair!r} names {unknown}, which are not among the modalities of the "
                f"graph ({list(features)})."
            )
        if isinstance(spec, pd.DataFrame):
            rows, cols, values = _frame_links(spec, features[a], features[b], f"`links[{pair!r}]`")
        else:
            rows, cols, values = _matrix_links(spec, (len(features[a]), len(features[b])), pair)
        parts.append((rows + offsets[a], cols + offsets[b], values))
        covered.add(frozenset(pair))
    return parts, covered
