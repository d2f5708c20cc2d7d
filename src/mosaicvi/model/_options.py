"""Defaults and per-modality options of :class:`~mosaicvi.MosaicVI`."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp

from mosaicvi._choices import check_choice
from mosaicvi.model._guidance import (
    GRAPH_LOSS_WEIGHT,
    bridged_modality_groups,
    default_graph_loss_weight,
    default_graph_weight,
    default_prior,
)
from mosaicvi.module._prior_heads import PRIORS


def default_max_epochs(n_obs: int) -> int:
    """Epochs when ``max_epochs`` is not given: ~1.2 million cell visits, between 20 and 400."""
    return int(np.clip(round(1_200_000 / max(n_obs, 1)), 20, 400))


def per_modality_choice(
    argument: str,
    kinds: Mapping[str, str],
    defaults: Mapping[str, str],
    overrides: Mapping[str, str] | None,
    allowed: Iterable[str],
) -> dict[str, str]:
    """Per-modality option: the default of each modality's kind, updated from ``overrides``.

    Raises a ValueError naming ``argument`` for an unknown modality or value.
    """
    chosen = {m: defaults[kind] for m, kind in kinds.items()}
    for m, value in (overrides or {}).items():
        if m not in kinds:
            raise ValueError(
                f"`{argument}` names {m!r}, not a modality of the model: {list(kinds)}."
            )
        chosen[m] = check_choice(f"{argument}[{m!r}]", value, allowed)
    return chosen


#: Default ``f`` of the latent adversary's per-cell strength ``adversarial_strength * f * F``
#: (``F``: the features of the modalities the cell measured); ``None``: one strength for every
#: cell. ``f = 0.0005`` keeps a ~500-cell batch from collapsing but lowered the SNARE-seq
#: mosaic's scib total (docs' benchmark notes, issue 21), so it is not the default.
ADVERSARY_FEATURE_SCALE = None
#: Default ``n`` of the latent adversary's per-cell strength ``adversarial_strength * min(1, F/n)``:
#: a cell measuring fewer features than this (a small protein panel, a targeted gene panel) is
#: pushed proportionally less, so the adversary cannot overpower its reconstruction and collapse
#: its batch; cells with at least ``n`` measured features get the full strength.
ADVERSARY_FULL_STRENGTH_FEATURES = 1000
#: Module keywords a model resolves at creation and saves; a model saved before one existed is
#: loaded with the value it then had (its old behaviour), not today's default.
LEGACY_RESOLVED_OPTIONS = {
    "prior": "normal",
    "adversary_feature_scale": None,
    "adversary_full_strength_features": None,
}

#: Keys of ``graph_kwargs`` -> the :class:`~mosaicvi.module.MosaicVAE` keyword each sets.
GRAPH_OPTIONS = {
    "weight": "graph_weight",
    "loss_weight": "graph_loss_weight",
    "kl_weight": "graph_kl_weight",
    "n_positive_edges": "n_graph_positive_edges",
    "n_negatives": "n_graph_negatives",
}
#: Keys of ``output_discriminator_kwargs`` that go to the module, and the keyword each sets.
OUTPUT_DISCRIMINATOR_MODULE_OPTIONS = {"weight": "output_adversarial_weight"}
#: Keys of ``output_discriminator_kwargs`` that go to the training plan.
OUTPUT_DISCRIMINATOR_PLAN_OPTIONS = {
    "lr_factor": "output_discriminator_lr_factor",
    "n_epochs_warmup": "n_epochs_output_adversarial_warmup",
}
OUTPUT_DISCRIMINATOR_OPTIONS = {
    **OUTPUT_DISCRIMINATOR_MODULE_OPTIONS,
    **OUTPUT_DISCRIMINATOR_PLAN_OPTIONS,
}


class IgnoredOptionWarning(UserWarning):
    """An option given to :class:`~mosaicvi.MosaicVI` that has no effect on this model."""


@contextmanager
def saved_options_quietly() -> Iterator[None]:
    """Within the block, :class:`IgnoredOptionWarning` is not shown.

    For models rebuilt from a saved file (``MosaicVI.load``, ``load_query_data``): their stored
    options were resolved, and warned about, when the model was first created.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IgnoredOptionWarning)
        yield


def checked_options(argument: str, options: Mapping | None, allowed: Mapping) -> dict:
    """``options`` as a dict; a ValueError naming ``argument`` and the allowed keys otherwise."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"`{argument}` must be a dict or None, got {type(options).__name__}.")
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise ValueError(
            f"`{argument}` has unknown keys {unknown}; the allowed keys are {list(allowed)}."
        )
    return dict(options)


def _deprecated(old: str, value, new: str, key: str | None, stacklevel: int) -> None:
    form = (
        f"`MosaicVI({new}={{{key!r}: {value!r}}})`"
        if key is not None
        else f"`MosaicVI({new}={{}})` to train it (None, the default: off)"
    )
    warnings.warn(
        f"`MosaicVI({old}=...)` is deprecated; use {form} instead.",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def upgrade_options(
    graph_kwargs: Mapping | None,
    output_discriminator_kwargs: Mapping | None,
    module_kwargs: dict,
    warn: bool = True,
    stacklevel: int = 3,
) -> tuple[dict, dict | None, dict]:
    """Move the old keywords of the graph and output discriminator into their option dicts.

    Parameters
    ----------
    graph_kwargs
        ``MosaicVI(graph_kwargs=...)``.
    output_discriminator_kwargs
        ``MosaicVI(output_discriminator_kwargs=...)`` (``None``: no output discriminator).
    module_kwargs
        The other keywords, which may hold the old ones (``graph_weight``,
        ``graph_loss_weight``, ..., ``output_discriminator``, ``output_adversarial_weight``).
    warn
        Emit a ``DeprecationWarning`` per old keyword (not when loading a saved model).
    stacklevel
        Stack level of the warnings, counted from the caller of this function.

    Returns
    -------
    The checked ``graph_kwargs``, ``output_discriminator_kwargs`` (``None`` when off) and the
    remaining module keywords.
    """
    graph = checked_options("graph_kwargs", graph_kwargs, GRAPH_OPTIONS)
    discriminator = (
        None
        if output_discriminator_kwargs is None
        else checked_options(
            "output_discriminator_kwargs",
            output_discriminator_kwargs,
            OUTPUT_DISCRIMINATOR_OPTIONS,
        )
    )
    rest = dict(module_kwargs)
    legacy = [
        (graph, "graph_kwargs", key, old) for key, old in GRAPH_OPTIONS.items() if old in rest
    ]
    if "output_discriminator" in rest:
        switched_on = bool(rest.pop("output_discriminator"))
        if warn:
            _deprecated(
                "output_discriminator", None, "output_discriminator_kwargs", None, stacklevel
            )
        if switched_on and discriminator is None:
            discriminator = {}
    weight = OUTPUT_DISCRIMINATOR_MODULE_OPTIONS["weight"]
    if weight in rest:
        legacy.append((discriminator, "output_discriminator_kwargs", "weight", weight))
    for target, new, key, old in legacy:
        value = rest.pop(old)
        if warn:
            _deprecated(old, value, new, key, stacklevel)
        if target is None:  # a generator weight without the discriminator: unused, as before
            continue
        if key in target and target[key] != value:
            raise ValueError(f"`{old}` and `{new}[{key!r}]` are both given; keep `{new}` only.")
        target[key] = value
    return graph, discriminator, rest


def upgrade_init_params(params: dict) -> dict:
    """Constructor keywords saved by an older mosaicvi, in today's form (without warnings)."""
    params = {**LEGACY_RESOLVED_OPTIONS, **params}
    graph, discriminator, rest = upgrade_options(
        params.pop("graph_kwargs", None),
        params.pop("output_discriminator_kwargs", None),
        params,
        warn=False,
    )
    # before the graph loss weight was resolved from the data, it was always 0.02
    graph.setdefault("loss_weight", GRAPH_LOSS_WEIGHT)
    return {**rest, "graph_kwargs": graph, "output_discriminator_kwargs": discriminator}


def module_options(graph: Mapping, discriminator: Mapping | None) -> dict:
    """Module keywords set by ``graph_kwargs`` and ``output_discriminator_kwargs``."""
    options = {GRAPH_OPTIONS[k]: v for k, v in graph.items()}
    options["output_discriminator"] = discriminator is not None
    for key, keyword in OUTPUT_DISCRIMINATOR_MODULE_OPTIONS.items():
        if discriminator is not None and key in discriminator:
            options[keyword] = discriminator[key]
    return options


def plan_options(discriminator: Mapping | None) -> dict:
    """Training-plan keywords set by ``output_discriminator_kwargs``."""
    return {
        keyword: discriminator[key]
        for key, keyword in OUTPUT_DISCRIMINATOR_PLAN_OPTIONS.items()
        if discriminator is not None and key in discriminator
    }


def warn_deprecated_plan_kwargs(plan_kwargs: Mapping | None, stacklevel: int = 3) -> None:
    """Warn about output discriminator settings given through ``train(plan_kwargs=...)``."""
    for key, keyword in OUTPUT_DISCRIMINATOR_PLAN_OPTIONS.items():
        if keyword in (plan_kwargs or {}):
            warnings.warn(
                f"`train(plan_kwargs={{{keyword!r}: ...}})` is deprecated; create the model with "
                f"`MosaicVI(output_discriminator_kwargs={{{key!r}: ...}})` instead.",
                DeprecationWarning,
                stacklevel=stacklevel,
            )


def resolve_prior(
    prior: str, presence: np.ndarray, feature_names: Mapping[str, Sequence[str]]
) -> str:
    """The prior to build: ``prior`` itself, or for ``"auto"`` :func:`default_prior`."""
    check_choice("prior", prior, ["auto", *PRIORS])
    if prior == "auto":
        return default_prior(presence, [len(names) for names in feature_names.values()])
    return prior


def resolve_alignment(
    module_kwargs: dict,
    graph_kwargs: dict,
    presence: np.ndarray,
    feature_names: Mapping[str, Sequence[str]],
    graph: sp.spmatrix | None,
    prior: str,
) -> str:
    """Fill the data-dependent alignment options in place; a one-line description of them.

    ``prior`` is the resolved prior (:func:`resolve_prior`), described with the groups of
    modalities that paired cells join. ``graph_kwargs["weight"]`` and ``["loss_weight"]``
    ``"auto"`` (or absent) become :func:`default_graph_weight` and
    :func:`default_graph_loss_weight` of the presence mask,
    ``module_kwargs["adversary_feature_scale"]`` defaults to
    :data:`ADVERSARY_FEATURE_SCALE` and ``module_kwargs["adversary_full_strength_features"]`` to
    :data:`ADVERSARY_FULL_STRENGTH_FEATURES`. All are stored with the model (its init parameters), so a
    reloaded model keeps them whatever data it is given.
    """
    given = {k: v for k, v in graph_kwargs.items() if not (isinstance(v, str) and v == "auto")}
    if graph is None and given:
        warnings.warn(
            f"`graph_kwargs` {given} have no effect: this model has no guidance graph. Build one "
            "with `mosaicvi.data.guidance_graph(mdata)` and pass `guidance_graph=` to MosaicVI, "
            "or leave `graph_kwargs` out.",
            IgnoredOptionWarning,
            stacklevel=3,
        )
    n_features = [len(names) for names in feature_names.values()]
    if graph_kwargs.get("weight", "auto") == "auto":
        graph_kwargs["weight"] = default_graph_weight(presence, n_features)
    if graph_kwargs.get("loss_weight", "auto") == "auto":
        graph_kwargs["loss_weight"] = default_graph_loss_weight(presence, n_features)
    parts = ["no guidance graph"]
    if graph is not None:
        n_links = graph.nnz - graph.shape[0]
        parts = [
            f"guidance graph with {n_links} links, decoder weight {graph_kwargs['weight']}, "
            f"loss weight {graph_kwargs['loss_weight']}"
        ]
    scale = module_kwargs.setdefault("adversary_feature_scale", ADVERSARY_FEATURE_SCALE)
    full = module_kwargs.setdefault(
        "adversary_full_strength_features", ADVERSARY_FULL_STRENGTH_FEATURES
    )
    if full is not None and (isinstance(full, bool) or not isinstance(full, int) or full < 1):
        raise ValueError(
            f"`adversary_full_strength_features` must be a positive int (cells measuring fewer "
            f"features get a proportionally weaker adversary) or None, got {full!r}."
        )
    features = ", ".join(f"{m} {len(names):,}" for m, names in feature_names.items())
    if scale is not None:
        parts.append(f"latent adversary strength x {scale} x measured features ({features})")
    if full is not None:
        parts.append(
            f"latent adversary at full strength for cells measuring >= {full:,} features, "
            f"proportionally weaker below ({features})"
        )
    if scale is None and full is None:
        parts.append("latent adversary at the same strength for every cell")
    names = list(feature_names)
    groups = [" + ".join(names[i] for i in group) for group in bridged_modality_groups(presence)]
    parts.append(f"prior {prior} (modalities joined by paired cells: {' | '.join(groups)})")
    return "; ".join(parts)
