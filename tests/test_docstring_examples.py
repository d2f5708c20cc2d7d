"""Docstring examples of the public API run as doctests.

Every ``>>>`` example in the docstrings of ``mosaicvi``'s modules is executed, except lines marked
``# doctest: +SKIP`` (examples that need a trained model or user data). An example that no longer
matches its output fails here.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import matplotlib
import pytest

import mosaicvi

matplotlib.use("Agg")

pytestmark = pytest.mark.filterwarnings("ignore::anndata.OldFormatWarning")


def _modules() -> list[str]:
    names = ["mosaicvi"]
    for info in pkgutil.walk_packages(mosaicvi.__path__, prefix="mosaicvi."):
        names.append(info.name)
    return names


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = {}
    for name in _modules():
        module = importlib.import_module(name)
        for test in finder.find(module):
            runnable = [e for e in test.examples if not e.options.get(doctest.SKIP)]
            if runnable and test.name not in tests:
                tests[test.name] = test
    return [tests[name] for name in sorted(tests)]


EXAMPLES = _examples()


def test_public_api_has_runnable_examples():
    names = {t.name for t in EXAMPLES}
    assert "mosaicvi.pl._attention.attention_weights" in names
    assert "mosaicvi.pl._presence.modality_presence" in names


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("test", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example(test):
    import matplotlib.pyplot as plt

    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    test.globs = dict(test.globs)  # a fresh namespace per run
    failures: list[str] = []
    try:
        result = runner.run(test, out=lambda text: failures.append(text))
    finally:
        plt.close("all")
    assert result.failed == 0, "".join(failures)
