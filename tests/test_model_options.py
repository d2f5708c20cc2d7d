"""The model's entry points: one documented ``train``, grouped option dicts, old keywords."""

from __future__ import annotations

import inspect
import warnings

import pandas as pd
import pytest
from lightning.pytorch.callbacks import Callback

import mosaicvi

TINY = {"n_latent": 4, "n_hidden": 16, "n_hidden_decoder": 16}


def _links(mdata):
    """A few gene-peak and gene-protein links of the synthetic mosaic."""
    edges = [(f"gene{j}", f"peak{3 * j}") for j in range(20)]
    edges += [(f"gene{j}", f"prot{j}") for j in range(15)]
    return pd.DataFrame(edges, columns=["source", "target"])


@pytest.fixture
def graph(synthetic_mosaic):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    return mosaicvi.data.guidance_graph(
        synthetic_mosaic,
        gene_coordinates=None,
        protein_to_gene=None,
        links=_links(synthetic_mosaic),
        key=None,
    )


def test_train_documents_every_keyword_it_takes():
    train = mosaicvi.MosaicVI.train
    parameters = inspect.signature(train).parameters
    assert {"checkpoint_dir", "check_loss_every_n_steps", "plan_kwargs"} <= set(parameters)
    # numpydoc parameter headers: 8-space indented lines naming one or several parameters
    lines = train.__doc__.splitlines()
    headers = [line[8:] for line in lines if line[:8] == " " * 8 and line[8:9].strip()]
    documented = {name for line in headers for name in line.split(", ")}
    for name, parameter in parameters.items():
        if name != "self" and parameter.kind is not parameter.VAR_KEYWORD:
            assert name in documented, name
    # the only train of the class: no mixin redefines it
    assert [c for c in mosaicvi.MosaicVI.__mro__ if "train" in vars(c)][0] is mosaicvi.MosaicVI


def test_graph_keywords_are_deprecated_for_graph_kwargs(synthetic_mosaic, graph):
    with pytest.warns(DeprecationWarning, match="graph_kwargs"):
        old = mosaicvi.MosaicVI(
            synthetic_mosaic, guidance_graph=graph, graph_weight=0.5, graph_loss_weight=0.1, **TINY
        )
    new = mosaicvi.MosaicVI(
        synthetic_mosaic,
        guidance_graph=graph,
        graph_kwargs={"weight": 0.5, "loss_weight": 0.1},
        **TINY,
    )
    for model in (old, new):
        assert {d.graph_weight for d in model.module.decoders.values()} == {0.5}
        assert model.module.graph_loss_weight == 0.1
    assert old.init_params_ == new.init_params_


def test_unknown_graph_option_names_the_allowed_keys(synthetic_mosaic, graph):
    with pytest.raises(ValueError, match="loss_weight") as error:
        mosaicvi.MosaicVI(synthetic_mosaic, guidance_graph=graph, graph_kwargs={"wieght": 1.0})
    assert "wieght" in str(error.value) and "n_negatives" in str(error.value)


def test_unknown_output_discriminator_option_is_refused(synthetic_mosaic):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    with pytest.raises(ValueError, match="lr_factor"):
        mosaicvi.MosaicVI(synthetic_mosaic, output_discriminator_kwargs={"lr": 0.1}, **TINY)


class PlanRecorder(Callback):
    def on_train_start(self, trainer, pl_module):
        self.lr_factor = pl_module.output_discriminator_lr_factor
        self.warmup = pl_module.n_epochs_output_adversarial_warmup


def _train_recording(model, **kwargs) -> PlanRecorder:
    recorder = PlanRecorder()
    model.train(
        max_epochs=1,
        max_steps=1,
        accelerator="cpu",
        enable_progress_bar=False,
        callbacks=[recorder],
        **kwargs,
    )
    return recorder


def test_output_discriminator_keywords_are_deprecated(synthetic_mosaic):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    with pytest.warns(DeprecationWarning, match="output_discriminator_kwargs"):
        old = mosaicvi.MosaicVI(
            synthetic_mosaic, output_discriminator=True, output_adversarial_weight=0.01, **TINY
        )
    new = mosaicvi.MosaicVI(
        synthetic_mosaic,
        output_discriminator_kwargs={"weight": 0.01, "lr_factor": 0.25, "n_epochs_warmup": 3},
        **TINY,
    )
    for model in (old, new):
        assert model.module.output_discriminators is not None
        assert model.module.output_adversarial_weight == 0.01
    assert old.module.state_dict().keys() == new.module.state_dict().keys()
    off = mosaicvi.MosaicVI(synthetic_mosaic, **TINY)
    assert off.module.output_discriminators is None

    recorded = _train_recording(new)
    assert (recorded.lr_factor, recorded.warmup) == (0.25, 3)
    plan_kwargs = {"output_discriminator_lr_factor": 0.25, "n_epochs_output_adversarial_warmup": 3}
    with pytest.warns(DeprecationWarning, match="output_discriminator_kwargs"):
        recorded = _train_recording(old, plan_kwargs=plan_kwargs)
    assert (recorded.lr_factor, recorded.warmup) == (0.25, 3)


def test_saved_model_with_new_options_loads(synthetic_mosaic, tmp_path):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = mosaicvi.MosaicVI(
        synthetic_mosaic, output_discriminator_kwargs={"lr_factor": 0.25}, **TINY
    )
    model.save(tmp_path / "model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = mosaicvi.MosaicVI.load(tmp_path / "model", adata=synthetic_mosaic)
    assert not [w for w in caught if "MosaicVI(" in str(w.message)]
    assert loaded.module.output_discriminators is not None
    assert loaded.init_params_ == model.init_params_
