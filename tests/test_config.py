"""ExperimentConfig: defaults of the report, JSON round-trip, overrides, validation."""

import pytest

from monet_keras import config as cfg
from monet_keras.errors import MonetKerasError


def test_report_defaults():
    c = cfg.ExperimentConfig()
    assert (c.lambda_cycle, c.lambda_identity, c.learning_rate, c.beta_1) == (10.0, 5.0, 2e-4, 0.5)
    assert c.adversarial_loss == "bce" and c.image_size == 256 and c.base_filters == 64


def test_variants():
    assert list(cfg.REPORT_VARIANTS) == ["Os", "Us", "Os+Aug", "Us+Aug", "Os+DiffAug", "Us+DiffAug"]
    assert list(cfg.VARIANTS)[:6] == list(cfg.REPORT_VARIANTS)  # the report's first, in its order
    assert cfg.variant("CUT").model == "cut" and cfg.variant("CUT").sampling == "over"
    best = cfg.variant("Best")  # Os, with the epsilon and the step the quality benchmark chose
    assert (best.sampling, best.model, best.generator, best.augment, best.diffaugment) == ("over", "cyclegan",
                                                                                          "unet", False, "")
    assert (best.learning_rate, best.instance_norm_epsilon) == (4e-4, 1e-5)
    assert cfg.variant("Os").sampling == "over"
    assert cfg.variant("Us").sampling == "under"
    assert cfg.variant("Us+Aug").augment and cfg.variant("Us+Aug").sampling == "under"
    assert cfg.variant("Os+DiffAug").diffaugment == "color,translation,cutout"
    assert not cfg.variant("Os").augment and cfg.variant("Os").diffaugment == ""
    with pytest.raises(MonetKerasError, match="unknown variant"):
        cfg.variant("Os+Magic")


def test_json_round_trip(tmp_path):
    c = cfg.variant("Us+DiffAug", image_size=64, steps_per_epoch=3, cycle_noise_std=0.08)
    path = tmp_path / "config.json"
    path.write_text(c.to_json())
    assert cfg.ExperimentConfig.load(path) == c


def test_string_overrides_are_typed():
    c = cfg.variant("Os").with_overrides(["image_size=64", "augment=true", "cycle_noise_std=0.08",
                                          "steps_per_epoch=none", "diffaugment=color"])
    assert c.image_size == 64 and c.augment is True and c.cycle_noise_std == 0.08
    assert c.steps_per_epoch is None and c.diffaugment == "color"
    assert cfg.variant("Os").with_overrides(["steps_per_epoch=5"]).steps_per_epoch == 5


@pytest.mark.parametrize("change, field", [
    ({"image_size": 48}, "image_size"),
    ({"sampling": "sideways"}, "sampling"),
    ({"batch_size": 0}, "batch_size"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"lr_decay_epochs": 99}, "lr_decay_epochs"),
    ({"ema_decay": 1.5}, "ema_decay"),
])
def test_validation_names_the_field(change, field):
    with pytest.raises(MonetKerasError, match=field):
        cfg.ExperimentConfig().replace(**change).validate()


def test_unknown_and_mistyped_fields():
    with pytest.raises(MonetKerasError, match="unknown parameter 'imagesize'"):
        cfg.ExperimentConfig().replace(imagesize=64)
    with pytest.raises(MonetKerasError, match="image_size"):
        cfg.ExperimentConfig().with_overrides(["image_size=big"])
    with pytest.raises(MonetKerasError, match="KEY=VALUE"):
        cfg.ExperimentConfig().with_overrides(["image_size"])
