"""Reference mapping (scArches) for :class:`~mosaicvi.MosaicVI`: a query model from a reference.

:func:`load_query_data` sets the query up with the reference's registry, extended by the query's
new batches, builds a model with the reference's options and input statistics (never refitted on
the query), copies the reference weights, gives every batch table (decoder scale, bias and
dispersion, batch-conditioned encoder rows, the batch discriminator's output) a slot per new
batch, and freezes what the query must not change: every reference row of those tables is
masked by a gradient hook, every other reference weight stops taking gradients. The reference
cells' latent representation is therefore unchanged by a query fit (with the default flags).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from mudata import MuData
from scvi import REGISTRY_KEYS

from mosaicvi._compat import parse_device_args
from mosaicvi._constants import FEATURE_NAMES_REGISTRY_KEY
from mosaicvi.data._anndata_layout import data_feature_names
from mosaicvi.model._query_checks import check_same_features
from mosaicvi.model._query_data import check_known_modalities
from mosaicvi.model._safe_io import read_saved, rebuild_model

if TYPE_CHECKING:
    import os

    from anndata import AnnData

    from mosaicvi import MosaicVI

logger = logging.getLogger(__name__)

#: Cell visits (epochs x cells) of a default training (``default_max_epochs``' rule).
DEFAULT_CELL_VISITS = 1_200_000

#: Parameter name prefixes of the auxiliary batch discriminator: it shapes no output, so a query
#: fit trains all of it (on the query cells) to push the query batches together.
DISCRIMINATOR_PREFIX = "discriminator."


def reference_parts(cls, reference: MosaicVI | str | os.PathLike) -> dict[str, Any]:
    """Registry, init parameters, weights and attributes of a reference model or its directory."""
    if isinstance(reference, cls):
        if not reference.is_trained_:
            logger.warning("The reference model is not trained.")
        return {
            "registry": reference.adata_manager.registry,
            "init_params": reference.init_params_,
            "state": {
                k: v.detach().cpu().clone() for k, v in reference.module.state_dict().items()
            },
            "attributes": {"history_": reference.history_, "n_obs": reference.adata.n_obs},
            "trained_batches": np.unique(
                np.asarray(reference.adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY))
            ).astype(int),
        }
    if isinstance(reference, str) or hasattr(reference, "__fspath__"):
        return read_saved(cls, reference, None)
    raise TypeError(
        f"`reference` must be a trained {cls.__name__} or the directory it was saved to, got a "
        f"{type(reference).__name__}."
    )


def load_query_data(
    cls,
    query: MuData | AnnData,
    reference: MosaicVI | str | os.PathLike,
    freeze_expression: bool = True,
    freeze_decoder_first_layer: bool = True,
    freeze_classifier: bool = True,
    freeze_dropout: bool = False,
    unfrozen: bool = False,
    accelerator: str = "auto",
    device: int | str = "auto",
) -> MosaicVI:
    """A model of new batches (the query) built on a trained reference, as scArches does.

    scvi-tools' ``load_query_data`` for a mosaic model. The query is set up with the reference's
    registry; its new batches get new slots in every batch table (decoders' per-batch scale, bias
    and dispersion, the batch-conditioned encoders' rows, the batch discriminator's output); the
    reference's weights, guidance graph and input statistics are copied, never refitted. The
    query may hold any subset of the reference's modalities (a modality the reference never saw
    is refused) and need not have labels. Then ``query_model.train()`` fits only what the flags
    leave trainable: by default the new batches' rows (and the auxiliary batch discriminator),
    so the reference cells' latent representation does not change. Query cells move in the
    latent space only through the encoders' batch rows of a reference trained with
    ``MosaicVI(..., encode_batch=True)``; without them, the fit corrects the query's batch
    effects in the decoders only.

    Parameters
    ----------
    query
        MuData (or AnnData) set up like the reference's data: modalities named as its, each
        with its features in its order (:meth:`prepare_query_mudata`), the same ``batch_key``
        column (new batches allowed) and, optionally, ``labels_key`` (missing: unlabelled).
    reference
        A trained model, or the directory it was saved to (:meth:`save`).
    freeze_expression
        Freeze the encoders' first layers (default). ``False`` trains them on the query too,
        which changes the reference cells' latent representation.
    freeze_decoder_first_layer
        Freeze the decoders' first hidden layers (default); ``False`` trains them (changes the
        reference's decoded profiles, not its latent representation).
    freeze_classifier
        Freeze the label classifier of a semi-supervised reference (default), so query labels
        come from the reference's classifier.
    freeze_dropout
        Switch dropout off in the query fit.
    unfrozen
        Train every weight (overrides the other flags; the reference latent changes).
    accelerator, device
        Where the query model is put (Lightning's names; ``"auto"``: a GPU if there is one).

    Returns
    -------
    A new model of the query (the reference is unchanged). Its outputs are usable at once (the
    new batches' slots start as an average reference batch); ``train()`` fits the query.

    Examples
    --------
    >>> query_model = mosaicvi.MosaicVI.load_query_data(query, reference)  # doctest: +SKIP
    >>> query_model.train()  # doctest: +SKIP
    >>> query.obs["predicted"] = query_model.predict()  # doctest: +SKIP
    """
    parts = reference_parts(cls, reference)
    registry, state = parts["registry"], parts["state"]
    setup_args = registry["setup_args"]
    trained = {m: list(v) for m, v in registry[FEATURE_NAMES_REGISTRY_KEY].items()}
    if isinstance(query, MuData):
        check_known_modalities(query, list(trained))
    given = data_feature_names(query, setup_args)
    try:
        check_same_features(given, {m: pd.Index(v) for m, v in trained.items()})
    except ValueError as error:
        raise ValueError(
            f"{error} Or order and pad the query with `{cls.__name__}.prepare_query_mudata("
            "query, reference)`."
        ) from None
    setup = getattr(cls, registry["setup_method_name"])
    setup(
        query,
        source_registry=registry,
        extend_categories=True,
        allow_missing_labels=True,
        **setup_args,
    )
    model = rebuild_model(cls, query, parts["init_params"], state, registry)
    n_reference = len(
        registry["field_registries"][REGISTRY_KEYS.BATCH_KEY]["state_registry"][
            "categorical_mapping"
        ]
    )
    load_grown_weights(model.module, state)
    # Batches with reference cells; with a saved reference, every batch it registered (a
    # category without cells, e.g. an unused one of a categorical column, counts as trained).
    trained_batches = parts.get("trained_batches", np.arange(n_reference))
    rows = batch_rows(model.module, model.summary_stats.n_batch, trained_batches)
    model.n_reference_batches_ = n_reference
    model.reference_cell_visits_ = _cell_visits(parts["attributes"])
    model.to_device(_device(accelerator, device))
    model.module.eval()
    freeze_reference(
        model.module,
        rows,
        freeze_expression=freeze_expression,
        freeze_decoder_first_layer=freeze_decoder_first_layer,
        freeze_classifier=freeze_classifier,
        freeze_dropout=freeze_dropout,
        unfrozen=unfrozen,
    )
    # Usable before its fit (the reference's weights, an average reference batch in the new
    # slots): what mapping without query training gives.
    model.is_trained_ = True
    logger.info(
        "Query model: %d batches to fit; %d trainable of %d parameters.",
        model.summary_stats.n_batch - len(trained_batches),
        sum(p.numel() for p in model.module.parameters() if p.requires_grad),
        sum(p.numel() for p in model.module.parameters()),
    )
    return model


def _cell_visits(attributes: dict) -> int | None:
    """Epochs x cells of the reference's training, when its history is known."""
    history = attributes.get("history_") or {}
    epochs = len(history.get("elbo_train", []))
    split = ("train_indices_", "validation_indices_", "test_indices_")
    parts = [attributes.get(k) for k in split]
    n_obs = attributes.get("n_obs") or sum(len(p) for p in parts if p is not None)
    return int(epochs * n_obs) if epochs and n_obs else None


def _device(accelerator: str, device: int | str) -> torch.device:
    return parse_device_args(accelerator=accelerator, devices=device, return_device="torch")[2]


def load_grown_weights(module: torch.nn.Module, reference_state: dict[str, torch.Tensor]) -> None:
    """Load ``reference_state`` into ``module``, whose batch tables may have more rows.

    Rows beyond the reference's keep the module's fresh initialisation (:func:`batch_rows` then
    sets those of the encoders and decoders).
    """
    own = module.state_dict()
    unknown = [k for k in reference_state if k not in own]
    if unknown:
        raise ValueError(f"The reference weights do not fit this model (e.g. {unknown[:3]}).")
    merged = {}
    for key, new in own.items():
        old = reference_state[key].to(new.device, new.dtype)
        dims = [d for d in range(new.dim()) if new.shape[d] != old.shape[d]]
        if not dims:
            merged[key] = old
            continue
        if len(dims) != 1 or new.shape[dims[0]] < old.shape[dims[0]]:
            raise ValueError(
                f"Weight {key!r} has shape {tuple(old.shape)} in the reference and "
                f"{tuple(new.shape)} in the query model; only batch tables can grow."
            )
        n_old = old.shape[dims[0]]
        extra = new.narrow(dims[0], n_old, new.shape[dims[0]] - n_old)
        merged[key] = torch.cat([old, extra], dim=dims[0])
    module.load_state_dict(merged)


def batch_tables(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The encoders' and decoders' per-batch tables (one row per batch), by parameter name."""
    tables = {}
    for m, decoder in module.decoders.items():
        for name in ("batch_scale", "batch_bias", *decoder.likelihood.batch_parameters):
            tables[f"decoders.{m}.{name}"] = getattr(decoder, name)
    for m, encoder in module.encoders.items():
        if encoder.batch_embedding is not None:
            tables[f"encoders.{m}.batch_embedding.weight"] = encoder.batch_embedding.weight
    return tables


@torch.no_grad()
def batch_rows(
    module: torch.nn.Module, n_batch: int, trained_batches: np.ndarray
) -> dict[str, torch.Tensor]:
    """Start the untrained rows of every batch table as an average trained batch.

    Returns, per table, a ``(n_batch, 1)`` mask that is 1 on the rows a query fit trains (the
    batches without reference cells) and 0 on the reference's.
    """
    trained = torch.zeros(n_batch, dtype=torch.bool)
    trained[torch.as_tensor(trained_batches, dtype=torch.long)] = True
    masks = {}
    for name, table in batch_tables(module).items():
        rows = trained.to(table.device)
        table[~rows] = table[rows].mean(dim=0)
        masks[name] = (~rows).to(table.dtype).unsqueeze(1)
    return masks


def _row_mask_hook(mask: torch.Tensor):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        return grad * mask

    return hook


def freeze_reference(
    module: torch.nn.Module,
    rows: dict[str, torch.Tensor],
    freeze_expression: bool = True,
    freeze_decoder_first_layer: bool = True,
    freeze_classifier: bool = True,
    freeze_dropout: bool = False,
    unfrozen: bool = False,
) -> list:
    """Stop gradients to the reference weights; batch tables train only the ``rows`` masks' rows.

    Returns the gradient hooks' handles. ``freeze_expression=False`` also trains the encoders'
    first layers, ``freeze_decoder_first_layer=False`` the decoders' first hidden layers,
    ``freeze_classifier=False`` the label classifier (each changes the reference's outputs, as in
    scvi-tools); ``unfrozen`` trains everything.
    """
    if freeze_dropout:
        for layer in module.modules():
            if isinstance(layer, torch.nn.Dropout):
                layer.p = 0.0
    if unfrozen:
        for parameter in module.parameters():
            parameter.requires_grad_(True)
        return []
    handles = []
    for name, parameter in module.named_parameters():
        parts = name.split(".")
        trainable = name.startswith(DISCRIMINATOR_PREFIX) or name in rows
        if not freeze_expression and parts[0] == "encoders":
            trainable |= parts[2] in ("input_layer", "lsi_layer")
        if not freeze_decoder_first_layer and parts[0] == "decoders":
            trainable |= parts[2:4] == ["hidden", "0"]
        if not freeze_classifier and parts[0] == "classifier":
            trainable = True
        parameter.requires_grad_(trainable)
        if name in rows:
            handles.append(parameter.register_hook(_row_mask_hook(rows[name])))
    return handles


def is_query(model: MosaicVI) -> bool:
    """Whether ``model`` was built by ``load_query_data`` and not yet fitted."""
    return getattr(model, "n_reference_batches_", None) is not None and model.history_ is None


def query_train_arguments(model: MosaicVI, arguments: dict[str, Any]) -> dict[str, Any]:
    """``train()``'s arguments with a query's defaults filled in where the user gave none.

    A query fit trains few parameters from a trained start: a quarter of the reference's cell
    visits (epochs x cells; when unknown, of the default ~1.2 million), 5 to 100 epochs, no KL
    or adversarial warm-up, and no weight decay (Adam's decay would move the frozen rows).
    """
    if not is_query(model):
        return arguments
    # A query model is usable before its fit (``is_trained_``); scvi-tools records the history
    # of a first fit only, so the fit starts as one.
    model.is_trained_ = False
    arguments = dict(arguments)
    if arguments.get("max_epochs") is None:
        visits = getattr(model, "reference_cell_visits_", None) or DEFAULT_CELL_VISITS
        epochs = round(visits / 4 / max(model.adata.n_obs, 1))
        arguments["max_epochs"] = int(min(100, max(5, epochs)))
    for key in ("n_epochs_kl_warmup", "n_epochs_adversarial_warmup"):
        if arguments.get(key) is None:
            arguments[key] = 0
    plan_kwargs = dict(arguments.get("plan_kwargs") or {})
    plan_kwargs.setdefault("weight_decay", 0.0)
    arguments["plan_kwargs"] = plan_kwargs
    return arguments
