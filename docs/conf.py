"""Sphinx configuration for the mosaicvi documentation.

Build with ``make docs`` (installs the ``doc`` extra, then ``sphinx-build -W --keep-going``).

Two pages are assembled at build time, so that new public API and new benchmark tables appear
without editing the docs: ``_api_sections.rst`` (an autosummary of every name in the
``__all__`` of ``mosaicvi``, ``mosaicvi.data``, ``mosaicvi.pl``, ...) and
``generated/benchmark_tables.md`` (every ``benchmarks/results/*.md``); the executed notebooks
of ``tutorials/`` are copied into ``docs/tutorials/``.

Cross-links to other projects' docs (intersphinx) need the network. They are used when
docs.python.org answers within a few seconds, else left out, which only makes those links plain
text; ``MOSAICVI_DOCS_INTERSPHINX=1`` / ``=0`` forces either way.
"""

from __future__ import annotations

import importlib
import os
import socket
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
GENERATED = HERE / "generated"

project = "mosaicvi"
author = "mosaicvi developers"
copyright = "mosaicvi developers"
try:
    release = metadata.version("mosaicvi")
except metadata.PackageNotFoundError:  # building from a source tree without installing
    release = "0.0.0"
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "sphinxcontrib.mermaid",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "_api_sections.rst",
    "generated/benchmark_tables.md",
    "**.ipynb_checkpoints",
    "benchmark_figures.py",
]
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath"]
myst_heading_anchors = 3
myst_fence_as_directive = ["mermaid"]
# index.md includes the README and benchmarks.md the benchmarks README, whose links point to
# files of the repository outside docs/.
suppress_warnings = ["myst.xref_missing", "myst.header"]
# Tutorials are committed already executed (tests/test_tutorials.py runs them).
nb_execution_mode = "off"

autosummary_generate = ["api.md", "_api_sections.rst"]
# Classes list their own methods and those of mosaicvi mixins, not scvi-tools'/torch's.
templates_path = ["_templates"]
autodoc_member_order = "groupwise"
autodoc_typehints = "description"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True

#: Public namespaces whose ``__all__`` make up the API reference, with a section title each.
API_SECTIONS = {
    "mosaicvi": "Model",
    "mosaicvi.data": "Data: example data sets, mosaic helpers, guidance graph",
    "mosaicvi.pl": "Plots",
    "mosaicvi.metrics": "Metrics",
}


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_api_sections() -> None:
    """Autosummary of every public name of :data:`API_SECTIONS` (modules listed are skipped)."""
    lines = []
    for module_name, title in API_SECTIONS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        names = [
            n
            for n in getattr(module, "__all__", [])
            if not n.startswith("_") and not isinstance(getattr(module, n, None), type(os))
        ]
        if not names:
            continue
        lines += [title, "-" * len(title), "", f".. currentmodule:: {module_name}", ""]
        lines += [".. autosummary::", "   :toctree: generated", ""]
        lines += [f"   {n}" for n in sorted(names, key=str.lower)] + [""]
    _write_if_changed(HERE / "_api_sections.rst", "\n".join(lines))


def write_benchmark_tables() -> None:
    """Every ``benchmarks/results/*.md`` under its file name, after the figures drawn from CSVs."""
    import sys

    sys.path.insert(0, str(HERE))
    from benchmark_figures import write_benchmark_figures

    parts = []
    for figure in write_benchmark_figures(ROOT / "benchmarks" / "results", GENERATED):
        parts += [f"![{figure.stem}]({figure.name})", ""]
    for table in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        parts += [f"### `{table.name}`", "", table.read_text().strip(), ""]
    _write_if_changed(GENERATED / "benchmark_tables.md", "\n".join(parts) or "(none yet)\n")


def intersphinx_reachable() -> bool:
    """Whether to fetch intersphinx inventories (see the module docstring)."""
    forced = os.environ.get("MOSAICVI_DOCS_INTERSPHINX")
    if forced is not None:
        return forced.strip().lower() not in ("0", "false", "no", "")
    try:
        socket.create_connection(("docs.python.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


def copy_tutorials() -> None:
    """The executed notebooks of ``tutorials/`` into ``docs/tutorials/`` (not tracked by git)."""
    for notebook in sorted((ROOT / "tutorials").glob("*.ipynb")):
        target = HERE / "tutorials" / notebook.name
        if not target.exists() or target.read_bytes() != notebook.read_bytes():
            target.write_bytes(notebook.read_bytes())


write_api_sections()
write_benchmark_tables()
copy_tutorials()

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "mudata": ("https://mudata.readthedocs.io/en/latest/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "scvi": ("https://docs.scvi-tools.org/en/stable/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "pandas": ("https://pandas.pydata.org/docs/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
}
if not intersphinx_reachable():
    intersphinx_mapping = {}
intersphinx_timeout = 10

html_theme = "sphinx_book_theme"
html_title = "mosaicvi"
html_theme_options = {
    "repository_url": "https://github.com/mosaicvi/mosaicvi",
    "use_repository_button": True,
}
