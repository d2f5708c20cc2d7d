"""Encode the registry, init parameters and attributes of a model as plain JSON, and back.

Only a fixed set of types is written, each with an explicit tag (``{"__ndarray__": ...}``), and
decoding rebuilds exactly those types: nothing read from a model file can name a class or a
function to call, unlike a pickle. Floats that JSON cannot hold (NaN, inf) are tagged too, so the
file stays strict JSON.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: Kinds of numpy dtypes an array may have in a model file (bool, ints, floats, strings).
ARRAY_KINDS = frozenset("biufUO")
_TAGS = ("__float__", "__tuple__", "__ndarray__", "__index__", "__dataframe__")


def encode(value: Any, where: str = "value") -> Any:
    """JSON-safe structure for ``value``; raises ``TypeError`` naming ``where`` for other types.

    Handles None, bool, int, float (NaN/inf tagged), str, numpy scalars, lists, tuples, dicts with
    string keys, numpy arrays of bools/numbers/strings, pandas Index and DataFrame.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, np.generic):
        return encode(value.item(), where)
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where} has non-string keys {bad[:3]}; they cannot go into JSON.")
        return {k: encode(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": _encode_array(value, where), "dtype": _dtype_name(value, where)}
    if isinstance(value, pd.Index) and not isinstance(value, pd.MultiIndex):
        array = np.asarray(value)
        return {
            "__index__": _encode_array(array, where),
            "dtype": _dtype_name(array, where),
            "name": encode(value.name, f"{where}.name"),
        }
    if isinstance(value, pd.DataFrame):
        columns = [str(c) for c in value.columns]
        if len(set(columns)) != len(columns):
            raise TypeError(f"{where} has repeated column names; it cannot go into JSON.")
        return {
            "__dataframe__": {
                "index": encode(value.index, f"{where}.index"),
                "columns": {
                    c: encode(_plain_column(value[col]), f"{where}[{c!r}]")
                    for c, col in zip(columns, value.columns, strict=True)
                },
            }
        }
    raise TypeError(
        f"{where} is a {type(value).__name__}, which a mosaicvi model file cannot hold "
        "(only numbers, strings, lists, dicts, numpy arrays and pandas tables)."
    )


def decode(value: Any, where: str = "value") -> Any:
    """Rebuild what :func:`encode` wrote; raises ``ValueError`` on anything it would not write."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise ValueError(f"{where}: unexpected {type(value).__name__} in the model file.")
    tags = [t for t in _TAGS if t in value]
    if not tags:
        if any(k.startswith("__") and k.endswith("__") for k in value):
            raise ValueError(f"{where}: unknown tag among {list(value)} in the model file.")
        return {k: decode(v, f"{where}[{k!r}]") for k, v in value.items()}
    tag = tags[0]
    if tag == "__float__":
        if value[tag] not in ("nan", "inf", "-inf"):
            raise ValueError(f"{where}: bad float {value[tag]!r} in the model file.")
        return float(value[tag])
    if tag == "__tuple__":
        return tuple(decode(value[tag], where))
    if tag == "__ndarray__":
        return _decode_array(value[tag], value.get("dtype"), where)
    if tag == "__index__":
        array = _decode_array(value[tag], value.get("dtype"), where)
        return pd.Index(array, name=decode(value.get("name"), f"{where}.name"))
    frame = value[tag]
    index = decode(frame["index"], f"{where}.index")
    columns = {c: decode(v, f"{where}[{c!r}]") for c, v in frame["columns"].items()}
    return pd.DataFrame(columns, index=index)


def _plain_column(column: pd.Series) -> np.ndarray:
    """Column values as an array; objects that are all numbers (e.g. logged 0-d tensors) as floats.

    scvi-tools' training history keeps some losses as 0-d tensors in object columns.
    """
    values = column.to_numpy()
    if values.dtype.kind != "O" or all(isinstance(v, str) for v in values):
        return values
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return values


def _dtype_name(array: np.ndarray, where: str) -> str:
    if array.dtype.kind not in ARRAY_KINDS:
        raise TypeError(f"{where} has dtype {array.dtype}, which a model file cannot hold.")
    if array.dtype.kind == "O" and not all(isinstance(v, str) for v in array.ravel()):
        raise TypeError(f"{where} is an object array with non-string values.")
    return array.dtype.str if array.dtype.kind != "O" else "object"


def _encode_array(array: np.ndarray, where: str) -> Any:
    _dtype_name(array, where)
    if array.dtype.kind != "f":
        return array.tolist()
    if array.ndim == 0:
        return encode(float(array))
    return [_encode_array(row, where) for row in array]


def _decode_array(data: Any, dtype: Any, where: str) -> np.ndarray:
    if not isinstance(dtype, str):
        raise ValueError(f"{where}: array without a dtype in the model file.")
    resolved = np.dtype(object) if dtype == "object" else np.dtype(dtype)
    if resolved.kind not in ARRAY_KINDS:
        raise ValueError(f"{where}: dtype {dtype!r} is not allowed in a model file.")
    if resolved.kind == "f":
        data = _decode_floats(data)
    return np.array(data, dtype=resolved)


def _decode_floats(data: Any) -> Any:
    if isinstance(data, list):
        return [_decode_floats(v) for v in data]
    return decode(data)
