"""Checking a named choice against its registry: one error message for every option."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable


def check_choice(argument: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices`` (a registry's names), else a ValueError naming both.

    Examples
    --------
    >>> check_choice("fusion", "poe", ["attention", "poe"])
    'poe'
    """
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{argument}` is {value!r}; use one of {choices}.")
    return value
