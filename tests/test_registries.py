"""Named choices: one registry each, matching the type hints, checked before any fitting."""

from __future__ import annotations

from typing import get_args

import pytest

import mosaicvi.model._mosaicvi as model_file
from mosaicvi import MosaicVI
from mosaicvi.module._prior_heads import PRIORS, PriorName
from mosaicvi.nn._fusion import FUSIONS, FusionName
from mosaicvi.nn._input_transforms import INPUT_TRANSFORMS, InputTransformName
from mosaicvi.nn._likelihoods import LIKELIHOODS, LikelihoodName


@pytest.mark.parametrize(
    ("hint", "registry"),
    [
        (FusionName, FUSIONS),
        (PriorName, PRIORS),
        (InputTransformName, INPUT_TRANSFORMS),
        (LikelihoodName, LIKELIHOODS),
    ],
)
def test_type_hints_name_exactly_the_registered_choices(hint, registry):
    assert set(get_args(hint)) == set(registry)


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"fusion": "attn"}, "`fusion` is 'attn'; use one of"),
        ({"prior": "gaussian"}, "`prior` is 'gaussian'; use one of"),
        ({"likelihoods": {"rna": "gamma"}}, "likelihoods\\['rna'\\]"),
        ({"input_transforms": {"atac": "pca"}}, "input_transforms\\['atac'\\]"),
        ({"modality_dropout": 1.5}, "modality_dropout"),
        ({"closed_feature_fraction": 0.0}, "closed_feature_fraction"),
        ({"cross_modal_weight": -1.0}, "cross_modal_weight"),
        ({"guidance_graph": "no_such_graph"}, "no_such_graph"),
    ],
)
def test_bad_options_fail_before_any_statistic_is_fitted(
    synthetic_mosaic, monkeypatch, option, match
):
    def fitting(*args, **kwargs):
        raise AssertionError("statistics were fitted before the options were checked")

    monkeypatch.setattr(model_file, "fitted_statistics", fitting)
    MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    with pytest.raises(ValueError, match=match):
        MosaicVI(synthetic_mosaic, **option)


def test_module_loss_names_the_keywords_the_training_plan_passes():
    """scvi-tools' TrainingPlan passes ``kl_weight`` (the KL warm-up) only to a ``loss`` whose
    signature names it; a ``**kwargs`` signature silently trained without the warm-up."""
    import inspect

    from mosaicvi.module import MosaicVAE

    names = set(inspect.signature(MosaicVAE.loss).parameters)
    assert {"kl_weight", "adversarial_strength", "n_importance_samples"} <= names
    assert "loss_kwargs" not in names
