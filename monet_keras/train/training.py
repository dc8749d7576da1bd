"""One training run: config -> data -> CycleGAN.fit -> RUN_DIR, resumable; and the ``train`` CLI.

RUN_DIR receives ``config.json``, ``history.csv``, ``samples/``, ``checkpoints/``,
``learning_curves.png`` and ``monet_generator.keras`` (plain Keras layers only, so it loads with
``keras.saving.load_model`` without this package). Running again on the same RUN_DIR resumes
from the last finished epoch with model and optimizer state.
"""

import dataclasses
import os
import time

import keras
import tensorflow as tf

from monet_keras.data.pipeline import first_images, training_data
from monet_keras.data.source import find_data
from monet_keras.model import augment
from monet_keras.accel import fused_adam
from monet_keras.model import networks
from monet_keras.figures import plots
from monet_keras.accel import runtime
from monet_keras.train import callbacks as cb
from tfrecords_tools.atomic import atomic_path, write_text
from monet_keras.config import VARIANTS, ExperimentConfig, variant
from monet_keras.model.cyclegan import CycleGAN
from monet_keras.errors import MonetKerasError
from monet_keras.model.image_pool import ImagePool

GENERATOR_FILE = "monet_generator.keras"
PHOTO_GENERATOR_FILE = "photo_generator.keras"  # Monet -> photo, for the self-adversarial check
HOLDOUT_FILE = "holdout_monet.txt"  # names of the Monet paintings kept out of training, one a line
SAMPLE_COUNT = 4

# Fields a resumed run may change; every other field defines the experiment and must match.
_RESUME_MAY_CHANGE = ("epochs", "lr_decay_epochs", "learning_rate", "steps_per_epoch", "out_dir", "data_dir",
                      "evaluate", "make_submission", "jpeg_quality", "jit_compile", "skip_corrupt", "precision")


@dataclasses.dataclass
class RunResult:
    run_dir: str
    generator_path: str
    history: list
    epochs_trained: int  # in this call (0 when the run was already complete)
    resumed_from: int
    seconds: float


def _optimizer(config, precision="float32", ema=False):
    """Adam of the report (the fused-kernel Adam of :mod:`monet_keras.accel.fused_adam`: Keras's
    arithmetic in one pass per variable). ``ema``: keep an exponential moving average of the
    weights it updates (when ``config.ema_decay`` > 0). float16 needs loss scaling: the train
    step scales each loss, apply_gradients unscales."""
    if ema and config.ema_decay > 0:
        optimizer = fused_adam.Adam(config.learning_rate, beta_1=config.beta_1, use_ema=True,
                                    ema_momentum=config.ema_decay)
    else:
        optimizer = fused_adam.Adam(config.learning_rate, beta_1=config.beta_1)
    return keras.optimizers.LossScaleOptimizer(optimizer) if precision == "mixed_float16" else optimizer


def build_networks(config):
    """The four networks of ``config``, each initialised from its own seed (on CPU with the
    small-map matmul convolutions of :mod:`monet_keras.accel.smallconv`, see :mod:`monet_keras.model.networks`)."""
    size, base, seed = config.image_size, config.base_filters, config.seed
    return dict(
        monet_generator=networks.build_generator(size, base, seed=seed * 10 + 1, name="monet_generator"),
        photo_generator=networks.build_generator(size, base, seed=seed * 10 + 2, name="photo_generator"),
        monet_discriminator=networks.build_discriminator(size, base, seed=seed * 10 + 3, name="monet_discriminator"),
        photo_discriminator=networks.build_discriminator(size, base, seed=seed * 10 + 4, name="photo_discriminator"),
    )


def build_gan(config, strategy=None):
    """A compiled CycleGAN for ``config``, its variables created under ``strategy``'s scope.

    The networks compute in ``config.precision`` (resolved by :func:`runtime.resolve_precision`;
    their last layers and all losses stay float32); the augmenter stays float32.
    """
    strategy = strategy or tf.distribute.get_strategy()
    precision = runtime.resolve_precision(config.precision, strategy)
    with strategy.scope():
        with runtime.dtype_policy(precision):
            nets = build_networks(config)
        gan = CycleGAN(
            **nets,
            lambda_cycle=config.lambda_cycle,
            lambda_identity=config.lambda_identity,
            adversarial_loss=config.adversarial_loss,
            augmenter=augment.from_config(config),
            diffaugment_policy=config.diffaugment,
            cycle_noise_std=config.cycle_noise_std,
            image_pool_monet=_pool(config, 1),
            image_pool_photo=_pool(config, 2),
            seed=config.seed,
        )
        jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
        gan.compile(_optimizer(config, precision, ema=True), _optimizer(config, precision, ema=True),
                    _optimizer(config, precision), _optimizer(config, precision), jit_compile=jit)
    return gan


def _pool(config, offset):
    if config.pool_size <= 0:
        return None
    return ImagePool(config.pool_size, (config.image_size, config.image_size, 3), seed=config.seed * 10 + offset)


def generator_weights(gan):
    """G_monet's weights (``get_weights`` order), its EMA weights in place of the trained ones
    when its optimizer keeps them."""
    generator = gan.monet_generator
    optimizer = getattr(gan.monet_generator_optimizer, "inner_optimizer", gan.monet_generator_optimizer)
    averages = {}
    if optimizer.use_ema:
        averages = {id(v): a for v, a in zip(generator.trainable_variables, optimizer._model_variables_moving_average)}
    return [keras.ops.convert_to_numpy(averages.get(id(v), v)) for v in generator.weights]


def save_generator(gan, config, path):
    """Save G_monet (its EMA weights when ema_decay > 0) as a standalone float32 ``.keras`` file, atomically."""
    return _save_float32(generator_weights(gan), config, "monet_generator", path)


def save_photo_generator(gan, config, path):
    return _save_float32(gan.photo_generator.get_weights(), config, "photo_generator", path)


def _save_float32(weights, config, name, path):
    """Save a generator with ``weights`` atomically, as Keras's own layers computing in float32
    (variables are float32 under every policy), so the saved model runs float32 and loads
    without this package."""
    with runtime.dtype_policy("float32"):
        generator = networks.build_generator(config.image_size, config.base_filters, name=name, small_map_matmul=False)
    generator.set_weights(weights)
    with atomic_path(path, suffix=".keras") as tmp:
        keras.saving.save_model(generator, tmp)
    return path


def _check_resumable(run_dir, config):
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return
    previous = ExperimentConfig.load(path)
    for field in previous.to_dict():
        if field not in _RESUME_MAY_CHANGE and getattr(previous, field) != getattr(config, field):
            raise MonetKerasError(
                f"{run_dir} holds a run with {field}={getattr(previous, field)!r}, not {getattr(config, field)!r}; "
                f"use another --out or the same settings to resume")


def train(config: ExperimentConfig, strategy=None, log=print, verbose="auto", data=None) -> RunResult:
    """Train ``config`` into ``config.out_dir``, resuming from its last checkpoint if there is one.

    ``data``: the run's :class:`~monet_keras.data.source.DataFolder`, maybe checked already (the
    notebook hands its own on, so the images are checked once); default: found at ``config.data_dir``.
    """
    config.validate()
    start = time.time()
    run_dir = config.out_dir
    os.makedirs(run_dir, exist_ok=True)
    _check_resumable(run_dir, config)
    runtime.set_seed(config.seed)
    runtime.tune_malloc()
    strategy = strategy or runtime.pick_strategy(verbose=False)

    train_data = training_data(config, data, log=log)
    log(f"data: {train_data.n_monet} Monet ({train_data.monet.kind}), {train_data.n_photo} photos "
        f"({train_data.photo.kind}); sampling={config.sampling}, {train_data.steps_per_epoch} steps per epoch"
        + (f"; {len(train_data.holdout_names)} Monet held out" if train_data.holdout_names else ""))
    write_text(os.path.join(run_dir, "config.json"), config.to_json())
    if train_data.holdout_names:
        write_text(os.path.join(run_dir, HOLDOUT_FILE), "\n".join(train_data.holdout_names) + "\n")

    gan = build_gan(config, strategy)
    checkpoint_dir = os.path.join(run_dir, "checkpoints")
    initial_epoch = cb.restore_latest(gan, checkpoint_dir, log=log)
    if initial_epoch:
        log(f"resuming {run_dir} from epoch {initial_epoch} of {config.epochs} "
            f"(optimizer step {int(gan.monet_generator_optimizer.iterations.numpy())})")
    history_path = os.path.join(run_dir, "history.csv")

    epochs_trained = 0
    if initial_epoch < config.epochs:
        photos = first_images(train_data.photo, config.image_size, SAMPLE_COUNT)
        callbacks = [
            cb.StopOnNonFinite(train_data.steps_per_epoch),
            cb.LinearDecay(config.learning_rate, config.epochs, config.lr_decay_epochs),
            cb.HistoryCSV(history_path, initial_epoch),
            cb.SampleGrid(photos, os.path.join(run_dir, "samples")),
            cb.Checkpoint(checkpoint_dir),
        ]
        # A finite dataset is re-iterated (and so reshuffled) every epoch only when fit is not
        # given steps_per_epoch; a fixed steps_per_epoch comes with an endless dataset.
        gan.fit(train_data.dataset, epochs=config.epochs, initial_epoch=initial_epoch,
                steps_per_epoch=config.steps_per_epoch, callbacks=callbacks, verbose=verbose, shuffle=False)
        epochs_trained = config.epochs - initial_epoch
    else:
        log(f"{run_dir} already finished {initial_epoch} epochs; nothing to train")

    history = cb.read_history(history_path)
    if history:
        plots.learning_curves(history, save_path=os.path.join(run_dir, "learning_curves.png"))
    generator_path = save_generator(gan, config, os.path.join(run_dir, GENERATOR_FILE))
    save_photo_generator(gan, config, os.path.join(run_dir, PHOTO_GENERATOR_FILE))
    log(f"saved {generator_path}")
    return RunResult(run_dir, generator_path, history, epochs_trained, initial_epoch, time.time() - start)


# --- CLI ------------------------------------------------------------------------------------

def config_from_args(args) -> ExperimentConfig:
    """The variant, then ``--config`` file values, then explicit flags, then ``--set`` pairs."""
    overrides = {}
    if args.config:
        overrides.update(ExperimentConfig.load(args.config).to_dict())
        overrides.pop("variant", None)
    for field in ("image_size", "epochs", "batch_size", "base_filters", "seed", "steps_per_epoch"):
        value = getattr(args, field)
        if value is not None:
            overrides[field] = value
    if args.skip_corrupt:
        overrides["skip_corrupt"] = True
    if args.data:
        overrides["data_dir"] = args.data
    if args.out:
        overrides["out_dir"] = args.out
    config = variant(args.variant).replace(**overrides).with_overrides(args.set or [])
    if not config.data_dir:
        config = config.replace(data_dir=find_data().path)
    return config.validate()


def add_config_arguments(parser):
    parser.add_argument("--variant", default="Os", choices=list(VARIANTS), help="the report's model (default Os)")
    parser.add_argument("--config", help="a config.json to start from (e.g. a previous run's)")
    parser.add_argument("--image-size", type=int, dest="image_size")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, dest="batch_size")
    parser.add_argument("--base-filters", type=int, dest="base_filters")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--steps-per-epoch", type=int, dest="steps_per_epoch")
    parser.add_argument("--skip-corrupt", action="store_true", dest="skip_corrupt",
                        help="skip (and count) unreadable or odd images instead of stopping before training")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override any ExperimentConfig field, e.g. --set cycle_noise_std=0.08 (repeatable)")


def _run_train(args):
    config = config_from_args(args)
    result = train(config)
    print(f"done: {result.epochs_trained} epoch(s) in {result.seconds:.0f} s; outputs in {result.run_dir}")
    return 0


def register_cli(subparsers):
    parser = subparsers.add_parser("train", help="train a CycleGAN variant on a Kaggle-layout folder",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="Kaggle-layout data folder (default: the Kaggle input folder)")
    parser.add_argument("--out", required=True, help="run folder (resumed if it holds a checkpoint)")
    add_config_arguments(parser)
    parser.set_defaults(func=_run_train)
