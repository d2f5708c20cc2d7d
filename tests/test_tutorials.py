"""The tutorial notebooks: shipped executed, with figures, and they run top to bottom.

``test_tutorial_runs`` (marker ``tutorial``; ``-m "not tutorial"`` skips it) executes each notebook
of ``tutorials/`` with nbclient in a fresh kernel, on the data the package ships, and fails on the
first cell that raises. To fit the test budget the notebook's ``parameters`` cell is followed by
``MAX_EPOCHS = 2``; ``MOSAICVI_TUTORIAL_EPOCHS=shipped`` runs the notebooks with the epochs they
ship with (as committed), any number runs with that many.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

TUTORIALS = Path(__file__).parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


def test_there_are_tutorials():
    assert {p.stem for p in NOTEBOOKS} >= {
        "snareseq_mosaic",
        "guidance_graph_bmmc",
        "differential_features",
        "reference_mapping",
    }


def _parameters_cell(notebook) -> int:
    tagged = [
        i
        for i, cell in enumerate(notebook.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    assert len(tagged) == 1, "a tutorial needs exactly one cell tagged 'parameters'"
    assert "MAX_EPOCHS" in notebook.cells[tagged[0]].source
    return tagged[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_tutorial_is_shipped_executed_with_figures(path):
    notebook = nbformat.read(path, as_version=4)
    _parameters_cell(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert None not in counts, f"{path.name}: commit it executed (a cell has no execution count)"
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not run top to bottom"
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"], f"{path.name} has an error"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name}: no figure in the committed outputs"


@pytest.mark.tutorial
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_tutorial_runs(path, tmp_path):
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    epochs = os.environ.get("MOSAICVI_TUTORIAL_EPOCHS", "2")
    if epochs != "shipped":
        index = _parameters_cell(notebook)
        override = nbformat.v4.new_code_cell(f"MAX_EPOCHS = {int(epochs)}")
        notebook.cells.insert(index + 1, override)
    client = NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # files it writes go to tmp_path
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on failure
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
