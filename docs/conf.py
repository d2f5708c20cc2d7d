"""Sphinx configuration for the mosaicvi documentation.

Build with ``pip install -e ".[doc]"`` then ``sphinx-build -b html docs docs/_build/html``.
"""

from __future__ import annotations

from importlib import metadata

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
    "sphinx_autodoc_typehints",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
# index.md includes the README, whose links point to files of the repository outside docs/.
suppress_warnings = ["myst.xref_missing"]
# Tutorials are committed already executed.
nb_execution_mode = "off"

autosummary_generate = True
autodoc_member_order = "groupwise"
autodoc_typehints = "description"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "mudata": ("https://mudata.readthedocs.io/en/latest/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "scvi": ("https://docs.scvi-tools.org/en/stable/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
}

html_theme = "sphinx_book_theme"
html_title = "mosaicvi"
html_theme_options = {
    "repository_url": "https://github.com/mosaicvi/mosaicvi",
    "use_repository_button": True,
}
