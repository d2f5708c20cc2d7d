"""Defaults and per-modality options of :class:`~mosaicvi.MosaicVI`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping


def default_max_epochs(n_obs: int) -> int:
    """Epochs when ``max_epochs`` is not given: ~1.2 million cell visits, between 20 and 400."""
    return int(np.clip(round(1_200_000 / max(n_obs, 1)), 20, 400))


def per_modality_choice(
    argument: str,
    kinds: Mapping[str, str],
    defaults: Mapping[str, str],
    overrides: Mapping[str, str] | None,
    allowed: tuple[str, ...],
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
        if value not in allowed:
            raise ValueError(f"`{argument}[{m!r}]` is {value!r}; use one of {allowed}.")
        chosen[m] = value
    return chosen
