"""ExperimentConfig: every knob of a run, with the founding report's values as defaults.

One dataclass, JSON round-trip, and the report's named variants. The same field names are
used everywhere: ``train --set image_size=64``, the notebook's ``parameters`` cell and the
batch runner's ``-p image_size 64``.
"""

import dataclasses
import json
import os

from monet_keras.errors import MonetKerasError

SAMPLINGS = ("over", "under")
ADVERSARIAL_LOSSES = ("bce", "lsgan")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16")  # the images.zip writer's generator
GENERATORS = ("unet", "resnet")
MODELS = ("cyclegan", "cut")
UPSAMPLINGS = ("transpose", "resize")


@dataclasses.dataclass
class ExperimentConfig:
    """All settings of one experiment. Defaults reproduce the report's Os model."""

    variant: str = "Os"

    # data
    data_dir: str = ""  # Kaggle layout; "" = find it (Kaggle input folder, else demo data)
    out_dir: str = "runs/run"
    sampling: str = "over"  # "over" (Os) or "under" (Us); see monet_keras.data
    image_size: int = 256
    holdout_monet: int = 0  # Monet paintings kept out of training for evaluation
    skip_corrupt: bool = False  # skip unreadable records instead of stopping before training

    # model (monet_keras.model.networks)
    model: str = "cyclegan"  # "cyclegan" (report) or "cut" (Park et al. 2020: one generator, PatchNCE)
    base_filters: int = 64
    generator: str = "unet"  # "unet" (report) or "resnet" (Zhu et al.'s CycleGAN generator)
    unet_inner_norm: bool = True  # instance norm on the U-Net's 1x1 bottleneck (report); it passes only beta
    upsample: str = "transpose"  # "transpose" (report) or "resize": nearest x2 + 3x3 conv (Odena et al. 2016)
    instance_norm_epsilon: float = 1e-3  # added to the variance (report, via tensorflow-addons; PyTorch 1e-5)

    # optimisation
    epochs: int = 25
    batch_size: int = 1
    steps_per_epoch: int | None = None  # None = one full epoch of the sampling scheme
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    lr_decay_epochs: int = 0  # linear decay to 0 over the last N epochs (0 = constant)
    seed: int = 42

    # losses
    adversarial_loss: str = "bce"  # "bce" (report) or "lsgan"
    lambda_cycle: float = 10.0
    identity_ratio: float = 0.5  # lambda_identity = identity_ratio * lambda_cycle
    cycle_noise_std: float = 0.0  # report eq. 8; 0 disables

    # CUT (model="cut"; monet_keras.model.cut): PatchNCE instead of the cycle
    lambda_nce: float = 1.0  # weight of the PatchNCE terms (FastCUT: 10)
    nce_layers: str = ""  # comma-separated generator layer names; "" = the generator's defaults
    nce_patches: int = 256  # patches sampled per layer and image
    nce_temperature: float = 0.07
    nce_identity: bool = True  # PatchNCE(y, G(y)) on Monet images too (FastCUT: false)
    nce_flip_equivariance: bool = False  # G's input flipped at random, its features back (FastCUT: true)

    # augmentation (training only)
    augment: bool = False
    aug_flip: bool = True
    aug_crop_fraction: float = 0.9  # crop side as a fraction of the image, then resize back
    aug_rotation: float = 0.05  # fraction of a full turn, as keras.layers.RandomRotation
    diffaugment: str = ""  # DiffAugment policy, e.g. "color,translation,cutout"

    # CycleGAN options off in the report
    pool_size: int = 0  # image history pool for discriminator fakes (Zhu et al.: 50)
    ema_decay: float = 0.0  # EMA of generator weights for the saved generator (0 = off)

    # runtime
    precision: str = "auto"  # auto = float32 on CPU/GPU, bfloat16 on TPU
    jit_compile: str = "auto"  # "auto" (Keras's choice), "true" or "false"
    # The whole run's wall-clock limit: "4h30m", "90m", "600s", seconds, "auto" (on Kaggle its run
    # limit minus a margin, else none) or None; see monet_keras.train.budget.
    time_budget: str | float | None = "auto"

    # outputs
    evaluate: bool = True
    inception_weights: str = ""  # "" = $MONET_KERAS_INCEPTION_WEIGHTS or imagenet; a .pb = Kaggle's extractor
    make_submission: bool = True
    jpeg_quality: int = 95

    @property
    def lambda_identity(self) -> float:
        return self.identity_ratio * self.lambda_cycle

    def validate(self) -> "ExperimentConfig":
        """Raise MonetKerasError naming the first bad field; return self."""
        def bad(field, why):
            raise MonetKerasError(f"bad parameter {field}={getattr(self, field)!r}: {why}")

        if self.sampling not in SAMPLINGS:
            bad("sampling", f"expected one of {', '.join(SAMPLINGS)}")
        if self.adversarial_loss not in ADVERSARIAL_LOSSES:
            bad("adversarial_loss", f"expected one of {', '.join(ADVERSARIAL_LOSSES)}")
        if self.generator not in GENERATORS:
            bad("generator", f"expected one of {', '.join(GENERATORS)}")
        if self.upsample not in UPSAMPLINGS:
            bad("upsample", f"expected one of {', '.join(UPSAMPLINGS)}")
        if self.model not in MODELS:
            bad("model", f"expected one of {', '.join(MODELS)}")
        if self.model == "cut" and self.cycle_noise_std:
            bad("cycle_noise_std", "CUT has no cycle; expected 0 with model=cut")
        for field in ("nce_identity", "nce_flip_equivariance"):
            if not isinstance(getattr(self, field), bool):
                bad(field, "expected true or false")
        if not isinstance(self.nce_layers, str) or any(not n.strip() for n in self.nce_layers.split(",")
                                                       if self.nce_layers.strip()):
            bad("nce_layers", "expected comma-separated layer names, or empty for the defaults")
        if not isinstance(self.unet_inner_norm, bool):
            bad("unet_inner_norm", "expected true or false")
        if self.precision not in PRECISIONS:
            bad("precision", f"expected one of {', '.join(PRECISIONS)}")
        if self.jit_compile not in ("auto", "true", "false"):
            bad("jit_compile", "expected auto, true or false")
        size = self.image_size
        if not isinstance(size, int) or size < 32 or size & (size - 1):
            bad("image_size", "expected a power of two, at least 32")
        for field in ("epochs", "batch_size", "base_filters", "nce_patches"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
                bad(field, "expected a positive integer")
        if self.steps_per_epoch is not None and (
                not isinstance(self.steps_per_epoch, int) or self.steps_per_epoch < 1):
            bad("steps_per_epoch", "expected a positive integer or None")
        for field in ("holdout_monet", "pool_size", "lr_decay_epochs"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 0:
                bad(field, "expected a non-negative integer")
        if self.lr_decay_epochs > self.epochs:
            bad("lr_decay_epochs", f"cannot exceed epochs={self.epochs}")
        for field in ("learning_rate", "lambda_cycle", "nce_temperature", "instance_norm_epsilon"):
            if not getattr(self, field) > 0:
                bad(field, "expected a positive number")
        for field in ("identity_ratio", "cycle_noise_std", "lambda_nce"):
            if not getattr(self, field) >= 0:
                bad(field, "expected a non-negative number")
        if not 0 <= self.beta_1 < 1:
            bad("beta_1", "expected 0 <= beta_1 < 1")
        if not 0 <= self.ema_decay < 1:
            bad("ema_decay", "expected 0 <= ema_decay < 1 (0 = off)")
        if not 0 < self.aug_crop_fraction <= 1:
            bad("aug_crop_fraction", "expected 0 < fraction <= 1")
        if not 0 <= self.aug_rotation <= 0.5:
            bad("aug_rotation", "expected 0 <= fraction of a turn <= 0.5")
        if not 1 <= self.jpeg_quality <= 100:
            bad("jpeg_quality", "expected 1..100")
        # Imported here, not at the top: the CLI reads VARIANTS for --help without loading TensorFlow.
        from monet_keras.model.diffaugment import parse_policy

        parse_policy(self.diffaugment)
        if self.time_budget != "auto":
            from monet_keras.train.budget import parse_duration

            parse_duration(self.time_budget)
        return self

    # --- JSON round-trip -------------------------------------------------------------------

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values: dict) -> "ExperimentConfig":
        return cls().replace(**values)

    @classmethod
    def from_json(cls, text: str) -> "ExperimentConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path) -> "ExperimentConfig":
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_json(f.read())
        except (OSError, ValueError) as e:
            raise MonetKerasError(f"cannot read config {os.fspath(path)}: {e}") from None

    def replace(self, **changes) -> "ExperimentConfig":
        """A copy with ``changes`` applied; unknown names and wrong types raise MonetKerasError."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        clean = {}
        for name, value in changes.items():
            if name not in fields:
                raise MonetKerasError(f"unknown parameter {name!r}; known: {', '.join(sorted(fields))}")
            clean[name] = _coerce(name, value, getattr(self, name), fields[name])
        return dataclasses.replace(self, **clean)

    def with_overrides(self, assignments) -> "ExperimentConfig":
        """Apply ``["key=value", ...]`` strings (the CLI's ``--set``)."""
        changes = {}
        for item in assignments:
            if "=" not in item:
                raise MonetKerasError(f"bad --set {item!r}: expected KEY=VALUE")
            key, value = item.split("=", 1)
            changes[key.strip()] = value.strip()
        return self.replace(**changes)


def _coerce(name, value, default, field):
    """Turn strings from the CLI or papermill into the field's type."""
    kind = field.type if isinstance(field.type, type) else None
    if field.type == str | float | None:  # time_budget: a duration's text, seconds, "auto" or None
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise MonetKerasError(f"bad parameter {name}={value!r}: expected a duration, auto or none")
        return value.strip() if isinstance(value, str) else value
    if field.type in ("int | None", int | None):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        kind = int
    if kind is None:
        kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value) if not isinstance(value, str) else int(value.strip())
        if kind is float:
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError):
        raise MonetKerasError(f"bad parameter {name}={value!r}: expected {kind.__name__}") from None
    return value


# --- named variants: the report's six, then the kit's own -------------------------------------

_DIFFAUG_POLICY = "color,translation,cutout"

REPORT_VARIANTS = {
    "Os": dict(sampling="over"),
    "Us": dict(sampling="under"),
    "Os+Aug": dict(sampling="over", augment=True),
    "Us+Aug": dict(sampling="under", augment=True),
    "Os+DiffAug": dict(sampling="over", diffaugment=_DIFFAUG_POLICY),
    "Us+DiffAug": dict(sampling="under", diffaugment=_DIFFAUG_POLICY),
}

# Beyond the report: CUT (Park et al. 2020) on the report's U-Net and data, and Best: Os with
# PyTorch CycleGAN's instance-norm epsilon and twice the Adam step, which beat Os by more than the
# seed spread at equal wall time in benchmarks/bench_quality.py (benchmarks/README.md).
VARIANTS = {
    **REPORT_VARIANTS,
    "CUT": dict(sampling="over", model="cut"),
    "Best": dict(sampling="over", learning_rate=4e-4, instance_norm_epsilon=1e-5),
}


def variant(name: str, **overrides) -> ExperimentConfig:
    """The named variant (the report's six, or the kit's own), with ``overrides`` applied on top."""
    if name not in VARIANTS:
        raise MonetKerasError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return ExperimentConfig(variant=name, **VARIANTS[name]).replace(**overrides).validate()


def tiny(name: str = "Os", **overrides) -> ExperimentConfig:
    """A variant at demo/test size: 32 px, 8 base filters, 2 steps per epoch."""
    small = dict(image_size=32, base_filters=8, epochs=1, steps_per_epoch=2, batch_size=1)
    small.update(overrides)
    return variant(name, **small)
