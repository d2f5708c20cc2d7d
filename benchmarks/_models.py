"""Train the compared models the same way: MosaicVI (default and ``--extra-runs``) and MULTIVI."""

from __future__ import annotations

import mudata
from _data import zero_padded
from _runner import train

import mosaicvi


def train_mosaicvi_runs(mosaic: mudata.MuData, args, **setup) -> dict[str, tuple]:
    """``{name: (model, timing)}``: the default MosaicVI and one per ``--extra-runs`` entry.

    ``setup`` goes to :meth:`mosaicvi.MosaicVI.setup_mudata` (``batch_key="batch"`` is set).
    The caller sets the seed (:func:`_runner.seeds`).
    """
    mosaicvi.MosaicVI.setup_mudata(mosaic, batch_key="batch", **setup)
    runs = {"MosaicVI": {}, **{f"MosaicVI, {k}": v for k, v in args.extra_runs.items()}}
    models = {}
    for name, spec in runs.items():
        model = mosaicvi.MosaicVI(mosaic, **spec.get("model", {}))
        models[name] = (model, train(model, args, **spec.get("train", {})))
    return models


def train_multivi(mosaic: mudata.MuData, args) -> tuple:
    """scvi-tools MULTIVI on the zero-padded ``mosaic``, its own defaults otherwise.

    Returns ``(model, padded data, timing)``; MULTIVI's ``setup_mudata`` rejects unpaired data,
    hence the padding.
    """
    import scvi

    padded = zero_padded(mosaic)
    scvi.model.MULTIVI.setup_mudata(
        padded, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": "atac"}
    )
    model = scvi.model.MULTIVI(padded)
    return model, padded, train(model, args)
