"""Image quality on a task with a known answer: which training options make better paintings.

The demo generator renders held-out scenes both as a photo and as a painting
(:func:`tfrecords_tools.demo.demo_pairs`), so "the painting of this photo" is known, while training
stays unpaired: the training set is :func:`~tfrecords_tools.demo.make_demo`'s, whose photos and
paintings are other, independently drawn scenes. Each candidate, a named set of ExperimentConfig
overrides on the report's Os, is trained by the kit's own entry (``monet_keras.train.training.train``,
what users run) at one budget for several seeds:

- ``--steps N`` (default): N steps in ``--epochs`` epochs (a checkpoint and a sample grid after each);
- ``--seconds S``: S seconds of wall time per run (``time_budget``: the kit plans epochs of
  ``--epoch-steps`` steps to fit, counting from the start of ``train``, its data check and tracing
  included; no images.zip is reserved).

Its saved generator G (EMA weights where the candidate keeps them) is then scored on the held-out
pairs; lower is better for all three:

- ``L1``: mean |G(photo) - painting| in [0, 1] pixel units: colours and layout, but a blurred
  average painting scores well on it;
- ``feat``: mean over pairs of the RMS difference of f(G(photo)) and f(painting) per feature;
- ``KIDx1000``: KID (x 1000) between f(G(photo)) of every pair and f(painting) of every pair: the
  generated set against the painting distribution, whoever's painting each one is.

f is the kit's stand-in extractor (``monet_keras.evaluate.features.standin_extractor``, seed 0, at the
image size, no resize): Inception weights cannot be downloaded here, and the stand-in is the same on
every machine (fixed random weights from a seed); its 3x3 tanh convolutions respond to local texture
(brush strokes, which L1 blurs over) and its quadrant means keep coarse layout.

The table gives, per candidate, the mean and the min-max spread over seeds of each score and the
ratio of its mean to Os's (same budget, same seeds), the steps trained and the seconds per run. The
``copy`` row is G(photo) = photo: what doing nothing scores. Run:

    python benchmarks/bench_quality.py                                   # every candidate, 500 steps, 3 seeds
    python benchmarks/bench_quality.py --candidates Os,lsgan --seeds 2 --steps 300 --base-filters 32
    python benchmarks/bench_quality.py --seconds 120
    python benchmarks/bench_quality.py --candidates Os,Best --seconds 180 --first-seed 3
"""

import argparse
import dataclasses
import logging
import os
import platform
import shutil
import sys
import tempfile
import time

import keras
import numpy as np

from monet_keras.config import VARIANTS, variant
from monet_keras.evaluate.features import extract_features, standin_extractor
from monet_keras.evaluate.metrics import kid
from monet_keras.model import networks
from monet_keras.train.training import train
from tfrecords_tools.demo import demo_pairs, make_demo

BASELINE = "Os"
_DIFFAUG = "color,translation,cutout"
KERAS_EPSILON = 1e-7  # keras.optimizers.Adam's default, the report's


def patch_count(image_size):
    """Logits in the PatchGAN's map at ``image_size`` (36 at 64 px, 900 at 256 px)."""
    height, width = networks.build_discriminator(image_size, 4).output_shape[1:3]
    return height * width


# Each candidate: ExperimentConfig fields set on top of the report's Os (or a function of the run's
# config returning them); "adam_epsilon" is applied by the benchmark itself (see AdamEpsilon).
CANDIDATES = {
    "Os": {},
    "Us": dict(sampling="under"),
    "Os+Aug": dict(augment=True),
    "Os+DiffAug": dict(diffaugment=_DIFFAUG),
    "lsgan": dict(adversarial_loss="lsgan"),
    "pool50": dict(pool_size=50),
    "ema0.99": dict(ema_decay=0.99),
    "bf16": dict(precision="mixed_bfloat16"),  # the networks compute in bfloat16, weights stay float32
    "lr-decay": lambda config: dict(lr_decay_epochs=config.epochs // 2),  # linear to 0 over the last half
    "zhu": lambda config: dict(adversarial_loss="lsgan", pool_size=50, lr_decay_epochs=config.epochs // 2),
    "resnet": dict(generator="resnet"),
    "resize": dict(upsample="resize"),
    "no-inner-norm": dict(unet_inner_norm=False),
    "resize+no-inner-norm": dict(upsample="resize", unet_inner_norm=False),
    "cut": dict(model="cut"),
    "fastcut": dict(model="cut", nce_identity=False, lambda_nce=10.0, nce_flip_equivariance=True),
    "norm-eps-1e-5": dict(instance_norm_epsilon=1e-5),  # PyTorch's; the kit's before it matched the report
    "norm-eps-1e-5+resize": dict(instance_norm_epsilon=1e-5, upsample="resize"),
    # The Kaggle tutorial's losses are sums over the PatchGAN map, ours means: the same Adam updates
    # as ours with epsilon divided by the map's size.
    "summed-loss": lambda config: dict(adam_epsilon=KERAS_EPSILON / patch_count(config.image_size)),
    # Step size and batch: the report's Adam (2e-4, beta_1 0.5) at batch 1 against faster learning.
    "lr4e-4": dict(learning_rate=4e-4),
    "lr8e-4": dict(learning_rate=8e-4),
    "lr4e-4+norm-eps-1e-5": dict(learning_rate=4e-4, instance_norm_epsilon=1e-5),
    "batch4+lr8e-4": dict(batch_size=4, learning_rate=8e-4),
    "Best": VARIANTS["Best"],  # the kit's preset, chosen from the rows above
}


class AdamEpsilon(keras.callbacks.Callback):
    """Set the optimizer's epsilon before the train step is traced (it reads it then)."""

    def __init__(self, epsilon):
        super().__init__()
        self.epsilon = epsilon

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        getattr(optimizer, "inner_optimizer", optimizer).epsilon = self.epsilon


class StepCount(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


@dataclasses.dataclass
class Scores:
    l1: float
    feat: float
    kid: float


def score(translated, paintings, extractor, real_features=None):
    """Scores of ``translated`` (float, [-1, 1]) against ``paintings`` (uint8), pair by pair."""
    target = paintings.astype(np.float32) / 127.5 - 1
    fake = extract_features(translated, extractor, verbose=0).astype(np.float64)
    real = (extract_features(paintings, extractor, verbose=0) if real_features is None
            else real_features).astype(np.float64)
    feat = float(np.mean(np.sqrt(np.mean((fake - real) ** 2, axis=1))))
    kid_mean, _ = kid(fake, real, subset_size=len(real), num_subsets=1)
    return Scores(l1=float(np.mean(np.abs(translated - target))) / 2, feat=feat, kid=1000 * kid_mean)


def candidate_config(name, base, seed):
    """``base`` with candidate ``name``'s overrides and ``seed``; returns (config, adam epsilon or None)."""
    overrides = CANDIDATES[name]
    overrides = dict(overrides(base) if callable(overrides) else overrides)
    epsilon = overrides.pop("adam_epsilon", None)
    return base.replace(variant=name, seed=seed, **overrides).validate(), epsilon


def run_one(config, epsilon, photos, paintings, extractor, real_features):
    """Train ``config``, translate the held-out photos, score them; returns (Scores, steps, seconds)."""
    keras.backend.clear_session()
    counter = StepCount()
    callbacks = [counter] + ([AdamEpsilon(epsilon)] if epsilon is not None else [])
    result = train(config, verbose=0, callbacks=callbacks)
    inputs = photos.astype(np.float32) / 127.5 - 1
    translated = np.concatenate([keras.ops.convert_to_numpy(result.generator(batch, training=False))
                                 for batch in np.split(inputs, range(50, len(inputs), 50))])
    return score(translated, paintings, extractor, real_features), counter.steps, result.seconds


def summarize(rows, baseline):
    """Markdown table lines: per candidate, mean [min-max] over seeds, and mean / baseline mean."""
    head = ("| candidate | L1 | L1 / Os | feat | feat / Os | KIDx1000 | KIDx1000 / Os | steps | s/run |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = list(head)
    base = {key: np.mean([getattr(s, key) for s, _, _ in baseline]) for key in ("l1", "feat", "kid")}
    for name, runs in rows.items():
        cells = [name]
        for key in ("l1", "feat", "kid"):
            values = np.array([getattr(s, key) for s, _, _ in runs])
            spread = f" [{values.min():.4f}-{values.max():.4f}]" if len(values) > 1 else ""
            ratio = values.mean() / base[key] if base[key] else float("nan")
            cells += [f"{values.mean():.4f}{spread}", f"{ratio:.3f}"]
        steps = [n for _, n, _ in runs]
        seconds = [t for _, _, t in runs]
        cells += [f"{np.mean(steps):.0f}" if steps[0] is not None else "-",
                  f"{np.mean(seconds):.0f}" if seconds[0] is not None else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES),
                        help=f"comma-separated, of: {', '.join(CANDIDATES)} (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per candidate (default 3)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="training seeds FIRST..FIRST+N-1 (fresh seeds check a choice made on others)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=500, help="steps per run (default 500)")
    budget.add_argument("--seconds", type=float, help="wall time per run instead of a step count")
    parser.add_argument("--epochs", type=int, default=5, help="--steps are split into this many epochs")
    parser.add_argument("--epoch-steps", type=int, default=50, help="steps per epoch with --seconds")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--base-filters", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=200, help="held-out (photo, painting) pairs")
    parser.add_argument("--monet", type=int, default=300, help="training paintings (Kaggle: 300)")
    parser.add_argument("--photos", type=int, default=1000, help="training photos")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.candidates.split(",") if name.strip()]
    unknown = [name for name in names if name not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidate(s) {', '.join(unknown)}; known: {', '.join(CANDIDATES)}")
    if BASELINE not in names:
        names.insert(0, BASELINE)
    if args.steps % args.epochs and args.seconds is None:
        parser.error(f"--steps {args.steps} is not a multiple of --epochs {args.epochs}")
    logging.getLogger("monet_keras").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench_quality_") as work:
        print("\n".join(benchmark(args, names, work)))
    return 0


def benchmark(args, names, work):
    """Make the data, train and score every candidate under ``work``; returns the table's lines."""
    data_dir = os.path.join(work, "data")
    make_demo(data_dir, n_monet=args.monet, n_photos=args.photos, size=args.size, seed=0)
    photos, paintings = demo_pairs(args.pairs, size=args.size, seed=0)
    extractor = standin_extractor(seed=0, image_size=args.size)
    real_features = extract_features(paintings, extractor, verbose=0)

    common = dict(image_size=args.size, base_filters=args.base_filters, data_dir=data_dir,
                  make_submission=False, evaluate=False)
    if args.seconds is None:
        base = variant(BASELINE, **common, epochs=args.epochs, steps_per_epoch=args.steps // args.epochs,
                       time_budget=None)
        budget_text = f"{args.steps} steps ({args.epochs} epochs)"
    else:  # more epochs than can fit: the budget's plan decides how many run
        base = variant(BASELINE, **common, epochs=1000, steps_per_epoch=args.epoch_steps,
                       time_budget=args.seconds)
        budget_text = f"{args.seconds:g} s of wall time (epochs of {args.epoch_steps} steps)"
    seeds = f"{args.first_seed}-{args.first_seed + args.seeds - 1}"
    print(f"# bench_quality: {args.size} px, base {args.base_filters}, batch 1 (unless a candidate sets it), "
          f"{budget_text}, seeds {seeds}; {args.monet} paintings / {args.photos} photos (unpaired), "
          f"{args.pairs} held-out pairs; {platform.node()}, {os.cpu_count()} CPUs, "
          f"keras {keras.__version__} ({keras.backend.backend()}), {time.strftime('%Y-%m-%d %H:%M')}",
          flush=True)

    copy = score(photos.astype(np.float32) / 127.5 - 1, paintings, extractor, real_features)
    rows = {}
    for name in names:
        rows[name] = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            config, epsilon = candidate_config(name, base, seed)
            config = config.replace(out_dir=os.path.join(work, "runs", name, str(seed)))
            scores, steps, seconds = run_one(config, epsilon, photos, paintings, extractor, real_features)
            shutil.rmtree(config.out_dir)  # checkpoints: ~0.7 GB a run at base 64
            rows[name].append((scores, steps, seconds))
            print(f"  {name} seed {seed}: L1 {scores.l1:.4f}, feat {scores.feat:.4f}, "
                  f"KIDx1000 {scores.kid:.4f}, {steps} steps, {seconds:.0f} s", flush=True)
    rows["copy"] = [(copy, None, None)]
    return summarize(rows, rows[BASELINE])


if __name__ == "__main__":
    sys.exit(main())
