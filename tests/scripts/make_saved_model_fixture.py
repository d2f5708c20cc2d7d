"""Write the saved-model fixture of tests/test_saved_model_compat.py (run once per format change).

The fixture is a small MosaicVI trained and saved by a given release, with the latent
representation and attention weights it returned at save time. The test loads it with the current
code and checks the outputs are unchanged. It was written with mosaicvi 0.1.0 as of commit
0c71a27 (before the architecture refactor of issue 20); do not regenerate it with newer code,
because its purpose is to catch changes that break old files.

    python tests/scripts/make_saved_model_fixture.py tests/data/saved_model_v0_1_0
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scvi
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_saved_model_compat import FIRST_CELLS, fixture_mudata

import mosaicvi


def main(out: Path) -> None:
    scvi.settings.seed = 0
    torch.set_num_threads(1)
    mdata, graph = fixture_mudata()
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch", layers="counts")
    model = mosaicvi.MosaicVI(
        mdata, n_latent=8, n_hidden=32, n_hidden_decoder=32, guidance_graph=graph
    )
    model.train(max_epochs=3, batch_size=64, early_stopping=False)
    model.save(out, overwrite=True)
    np.savez(
        out / "expected_outputs.npz",
        latent=model.get_latent_representation(),
        attention=model.get_attention_weights().to_numpy(),
        rna=model.get_normalized_expression(
            modality="rna", indices=FIRST_CELLS, use_z_mean=True, return_numpy=True
        ),
        atac=model.get_normalized_expression(
            modality="atac", indices=FIRST_CELLS, use_z_mean=True, return_numpy=True
        ),
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
