"""Model files that cannot run code: tensors for ``torch.load(weights_only=True)`` plus JSON.

scvi-tools saves a model as one pickle (``model.pt``) and loads it with an unrestricted
``torch.load`` (``weights_only`` off), so opening a model file from someone else can run any code
they put in it. :func:`save_model` and :func:`load_model` (``MosaicVI.save``/``load``) use two files instead:

- ``mosaicvi_weights.pt``: the module's ``state_dict`` (tensors only), read with
  ``torch.load(weights_only=True)``, whose unpickler refuses anything but tensors and plain
  containers;
- ``mosaicvi_model.json``: a manifest with the model class, versions, init parameters, the
  scvi-tools registry (numpy arrays and pandas objects written as tagged JSON, see
  :mod:`mosaicvi.model._json_codec`) and the training attributes (history, splits).

The guidance graph a model was built with lives in the graph encoder's buffers, so it is rebuilt
from the weights at load time and the data need not carry it.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anndata
import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from mudata import MuData

from mosaicvi._compat import parse_device_args
from mosaicvi._constants import FEATURE_NAMES_REGISTRY_KEY
from mosaicvi.data._anndata_layout import data_feature_names
from mosaicvi.data._guidance_graph import GuidanceGraph
from mosaicvi.model._input_statistics import statistics_from_weights
from mosaicvi.model._json_codec import decode, encode
from mosaicvi.model._options import saved_options_quietly, upgrade_init_params

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

MANIFEST_FILE = "mosaicvi_model.json"
WEIGHTS_FILE = "mosaicvi_weights.pt"
MDATA_FILE = "mdata.h5mu"
ADATA_FILE = "adata.h5ad"
#: Version of the file layout; bumped when the manifest changes incompatibly.
FORMAT_VERSION = 1
#: Marker written in place of a guidance graph in the init parameters (rebuilt from weights).
GRAPH_FROM_WEIGHTS = "<guidance graph: rebuilt from the graph encoder weights>"
_GRAPH_PREFIX = "graph_encoder."
_RESERVED_ATTRIBUTES = ("init_params_", "registry_")


def save_model(model, dir_path, prefix, overwrite, save_anndata, **anndata_write_kwargs) -> None:
    """Write ``model``'s weights (tensors only) and JSON manifest, optionally its data.

    The arguments are those of :meth:`mosaicvi.MosaicVI.save`.
    """
    if anndata_write_kwargs and not save_anndata:
        raise TypeError(
            f"save() got {sorted(anndata_write_kwargs)}, which only apply with "
            "`save_anndata=True` (they are passed to the data's `write`)."
        )
    directory = Path(dir_path)
    if directory.exists() and not overwrite:
        raise ValueError(
            f"{directory} already exists; pass `overwrite=True` or choose another directory."
        )
    attributes = {
        name: value
        for name, value in model._get_user_attributes()
        if name.endswith("_") and name not in _RESERVED_ATTRIBUTES
    }
    manifest = {
        "format": "mosaicvi-model",
        "format_version": FORMAT_VERSION,
        "model_class": type(model).__name__,
        "versions": {p: _version(p) for p in ("mosaicvi", "scvi-tools", "torch")},
        "init_params": encode(_init_params_for_file(model.init_params_), "init_params_"),
        "registry": encode(model.registry_, "registry_"),
        "attributes": _encode_attributes(attributes),
    }
    state = {name: tensor.detach().cpu() for name, tensor in model.module.state_dict().items()}
    directory.mkdir(parents=True, exist_ok=True)
    prefix = prefix or ""
    torch.save(state, directory / f"{prefix}{WEIGHTS_FILE}")
    text = json.dumps(manifest, indent=1, allow_nan=False)
    (directory / f"{prefix}{MANIFEST_FILE}").write_text(text, encoding="utf-8")
    if save_anndata:
        name = MDATA_FILE if isinstance(model.adata, MuData) else ADATA_FILE
        model.adata.write(directory / f"{prefix}{name}", **anndata_write_kwargs)


def _init_params_for_file(init_params: dict) -> dict:
    params = {group: dict(values) for group, values in init_params.items()}
    if params.get("non_kwargs", {}).get("guidance_graph") is not None:
        params["non_kwargs"]["guidance_graph"] = GRAPH_FROM_WEIGHTS
    return params


def load_model(cls, dir_path, adata, accelerator, device, prefix):
    """A ``cls`` model read from files written by :func:`save_model`, without unpickling.

    The arguments are those of :meth:`mosaicvi.MosaicVI.load`. Constructor keywords saved by
    an older mosaicvi are brought into today's form (:func:`upgrade_init_params`).
    """
    saved = read_saved(cls, dir_path, prefix)
    registry, state = saved["registry"], saved["state"]
    if adata is None:
        adata = _read_saved_data(Path(dir_path), prefix or "", registry)
    check_saved_features(adata, registry)
    _, _, torch_device = parse_device_args(
        accelerator=accelerator, devices=device, return_device="torch"
    )
    getattr(cls, registry["setup_method_name"])(
        adata, source_registry=registry, **registry["setup_args"]
    )
    model = rebuild_model(cls, adata, saved["init_params"], state, registry)
    for name, value in saved["attributes"].items():
        setattr(model, name, value)
    model.module.load_state_dict(state)
    model.to_device(torch_device)
    model.module.eval()
    model._validate_anndata(adata)
    return model


def read_saved(cls, dir_path: str | os.PathLike, prefix: str | None) -> dict[str, Any]:
    """``registry``, ``init_params``, ``state`` and ``attributes`` of a saved ``cls`` model."""
    directory, prefix = Path(dir_path), prefix or ""
    manifest = _read_manifest(directory, prefix)
    if manifest["model_class"] != cls.__name__:
        raise ValueError(
            f"{directory} holds a {manifest['model_class']} model, not a {cls.__name__}."
        )
    return {
        "registry": decode(manifest["registry"], "registry"),
        "init_params": decode(manifest["init_params"], "init_params"),
        "state": _read_weights(directory / f"{prefix}{WEIGHTS_FILE}"),
        "attributes": decode(manifest["attributes"], "attributes"),
    }


def rebuild_model(cls, data, init_params: dict, state: dict, registry: dict):
    """``cls`` on ``data``, built from a saved model's init parameters; weights not yet loaded.

    The input statistics and the guidance graph come from ``state`` (never refitted on
    ``data``), and options warned about when the model was first created are not warned about
    again. Used by ``MosaicVI.load`` and ``load_query_data``.
    """
    with statistics_from_weights(state), saved_options_quietly():
        return cls(data, **constructor_keywords(init_params, state, registry))


def constructor_keywords(init_params: dict, state: dict, registry: dict) -> dict[str, Any]:
    """The keywords that rebuild a model from its init parameters; its graph from ``state``."""
    kwargs = dict(init_params.get("non_kwargs", {}))
    if kwargs.get("guidance_graph") is not None:
        kwargs["guidance_graph"] = graph_from_weights(state, registry)
    groups = init_params.get("kwargs", {}).values()
    kwargs.update({k: v for group in groups for k, v in group.items()})
    return upgrade_init_params(kwargs)


def load_registry(dir_path: str | os.PathLike, prefix: str | None = None) -> dict:
    """The scvi-tools registry saved with a model (read from its JSON manifest)."""
    return decode(_read_manifest(Path(dir_path), prefix or "")["registry"], "registry")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _encode_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    encoded = {}
    for name, value in attributes.items():
        try:
            encoded[name] = encode(value, name)
        except TypeError as error:
            warnings.warn(f"Not saved with the model: {error}", UserWarning, stacklevel=3)
    return encoded


def _read_manifest(directory: Path, prefix: str) -> dict:
    path = directory / f"{prefix}{MANIFEST_FILE}"
    if not path.exists():
        pickled = directory / f"{prefix}model.pt"
        if pickled.exists():
            raise ValueError(
                f"{directory} holds a pickled scvi-tools model file ({pickled.name}) and no "
                f"{MANIFEST_FILE}. mosaicvi does not unpickle model files, since that can run "
                "arbitrary code; save the model again with this version of mosaicvi."
            )
        raise ValueError(f"{directory} holds no mosaicvi model ({path.name} is missing).")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a valid mosaicvi manifest: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != "mosaicvi-model":
        raise ValueError(f"{path} is not a mosaicvi model manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {manifest.get('format_version')}; this mosaicvi reads "
            f"version {FORMAT_VERSION}. Use the mosaicvi version that saved it."
        )
    return manifest


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path``; anything but a dict of tensors is refused, never executed."""
    if not path.exists():
        raise ValueError(f"The model weights {path} are missing.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds objects other than tensors, so it was not loaded (unpickling them "
            "could run arbitrary code). Only load model files from sources you trust, and "
            f"re-save them with `model.save()`. Details: {str(error).splitlines()[0]}"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(f"{path} is not a mosaicvi weights file (a dict of named tensors).")
    return state


def _read_saved_data(directory: Path, prefix: str, registry: dict) -> MuData | AnnData:
    is_mudata = registry.get("setup_method_name") == "setup_mudata"
    path = directory / f"{prefix}{MDATA_FILE if is_mudata else ADATA_FILE}"
    if not path.exists():
        raise ValueError(
            f"No data was saved with the model in {directory}; pass it: "
            f"`{registry.get('model_name', 'MosaicVI')}.load(dir_path, adata=mdata)`."
        )
    return mudata.read_h5mu(path) if is_mudata else anndata.read_h5ad(path)


def check_saved_features(adata: MuData | AnnData, registry: dict) -> None:
    """Raise a ValueError listing, per modality, how the data's features differ from the saved.

    Parameters
    ----------
    adata
        Data given to :meth:`mosaicvi.MosaicVI.load`.
    registry
        The registry saved with the model.
    """
    saved = registry.get(FEATURE_NAMES_REGISTRY_KEY)
    if saved is None:
        raise ValueError("The saved registry has no feature names; the model file is damaged.")
    given = data_feature_names(adata, registry["setup_args"])
    problems = []
    for m, names in saved.items():
        names = pd.Index(names)
        if m not in given:  # cells of the data did not measure it (a query, new data)
            continue
        have = pd.Index(given[m]).astype(str)
        if have.equals(names):
            continue
        missing, extra = names.difference(have), have.difference(names)
        if len(missing) or len(extra):
            problems.append(
                f"modality {m!r}: {len(missing)} saved features missing from the data "
                f"(e.g. {missing[:3].tolist()}), {len(extra)} features not in the model "
                f"(e.g. {extra[:3].tolist()})"
            )
        else:
            problems.append(f"modality {m!r}: the same features in another order")
    if problems:
        raise ValueError(
            "The data does not match the features the model was saved with: "
            + "; ".join(problems)
            + ". Subset and order each modality like the model, e.g. "
            "`mdata.mod['rna'] = mdata['rna'][:, names].copy()` with the names from "
            "`MosaicVI.load_registry(dir_path)['mosaicvi_feature_names']['rna']`."
        )


def graph_from_weights(state: dict[str, torch.Tensor], registry: dict) -> GuidanceGraph:
    """The model-order guidance graph stored in the graph encoder's edge buffers."""
    try:
        source, target, weight, sign = (
            state[f"{_GRAPH_PREFIX}{name}"].numpy()
            for name in ("edge_source", "edge_target", "edge_weight", "edge_sign")
        )
    except KeyError as error:
        raise ValueError(f"The weights lack the guidance graph buffer {error}.") from None
    names = registry[FEATURE_NAMES_REGISTRY_KEY]
    kinds = dict(registry["setup_args"]["modalities"])
    features = pd.Index(np.concatenate([np.asarray(names[m], dtype=object) for m in kinds]))
    n = len(features)
    weights = sp.csr_matrix((weight.astype(np.float32), (source, target)), shape=(n, n))
    signs = sp.csr_matrix((sign.astype(np.int8), (source, target)), shape=(n, n))
    modality = np.repeat(list(kinds), [len(names[m]) for m in kinds])
    return GuidanceGraph(
        weights=weights,
        signs=signs,
        feature_names=features,
        modality_of_feature=pd.Series(pd.Categorical(modality), index=features),
        kinds=kinds,
    )
