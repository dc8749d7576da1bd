"""One training run: config -> data -> CycleGAN.fit -> RUN_DIR, resumable.

RUN_DIR (:class:`~monet_keras.train.run_folder.RunFolder`) receives ``config.json``,
``history.csv``, ``samples/``, ``checkpoints/``, ``learning_curves.png``, ``monet_generator.keras``
(plain Keras layers only, so it loads with ``keras.saving.load_model`` without this package) and
``photo_generator.keras`` (CycleGAN only). Running again on the same RUN_DIR resumes from the last
finished epoch with model and optimizer state.
"""

import dataclasses
import json
import logging
import os
import time

import keras

from monet_keras.accel import fused_adam, malloc, policy, runtime
from monet_keras.config import ExperimentConfig
from monet_keras.data.pipeline import first_images, training_data
from monet_keras.errors import MonetKerasError
from monet_keras.figures import plots
from monet_keras.model import augment, networks
from monet_keras.model.cut import CUT, nce_layer_names
from monet_keras.model.cyclegan import CycleGAN
from monet_keras.model.image_pool import ImagePool
from monet_keras.train import budget, checkpoints
from monet_keras.train import callbacks as cb
from monet_keras.train.run_folder import RunFolder
from tfrecords_tools.atomic import atomic_path, write_text

logger = logging.getLogger(__name__)

SAMPLE_COUNT = 4

# Fields a resumed run may change; every other field defines the experiment and must match.
_RESUME_MAY_CHANGE = ("epochs", "lr_decay_epochs", "learning_rate", "steps_per_epoch", "out_dir",
                      "data_dir", "evaluate", "make_submission", "jpeg_quality", "jit_compile",
                      "skip_corrupt", "precision", "time_budget")


@dataclasses.dataclass
class RunResult:
    run_dir: str
    generator_path: str
    history: list
    epochs_trained: int  # in this call (0 when the run was already complete)
    resumed_from: int
    seconds: float
    generator: keras.Model  # what generator_path holds, in memory: the next steps need not reload it
    planned_epochs: int | None = None  # the time budget's plan (None without a budget)
    stopped: str = ""  # why the budget stopped training early, if it did


def _optimizer(config, speed):
    """Adam of the report for all four networks (the fused-kernel Adam of
    :mod:`monet_keras.accel.fused_adam` where ``speed`` says so: Keras's arithmetic in one pass per
    variable), keeping an exponential moving average of the weights when ``config.ema_decay`` > 0
    (only G_monet's average is used: it is the saved generator). float16 needs loss scaling: the
    train step scales each loss, apply_gradients unscales."""
    adam = fused_adam.Adam if speed.fused_adam else keras.optimizers.Adam
    ema = {"use_ema": True, "ema_momentum": config.ema_decay} if config.ema_decay > 0 else {}
    optimizer = adam(config.learning_rate, beta_1=config.beta_1, **ema)
    return keras.optimizers.LossScaleOptimizer(optimizer) if speed.precision == "mixed_float16" else optimizer


NETWORK_NAMES = ("monet_generator", "photo_generator", "monet_discriminator", "photo_discriminator")


def build_networks(config, small_map_matmul=False):
    """The four networks of ``config`` (CUT: the Monet generator and discriminator only), each
    initialised from its own disjoint range of seeds (:func:`networks.network_seed`)."""
    size, base = config.image_size, config.base_filters
    built = {}
    for index, name in enumerate(NETWORK_NAMES):
        if config.model == "cut" and name.startswith("photo"):
            continue
        seed = networks.network_seed(config.seed, index)
        if name.endswith("generator"):
            built[name] = networks.build_generator_from_config(config, name, seed=seed,
                                                               small_map_matmul=small_map_matmul)
        else:
            built[name] = networks.build_discriminator(size, base, seed=seed, name=name,
                                                       small_map_matmul=small_map_matmul,
                                                       norm_epsilon=config.instance_norm_epsilon)
    return built


def build_gan(config, strategy=None, speed=None):
    """A compiled CycleGAN (or CUT) for ``config``, its variables created under ``strategy``'s scope.

    ``speed``: the :class:`~monet_keras.accel.policy.SpeedPolicy` (default: resolved for
    ``strategy`` and ``config.precision``). The networks compute in its precision (their last
    layers and all losses stay float32); the augmenter stays float32.
    """
    strategy = strategy or runtime.current_strategy()
    speed = speed or policy.resolve(strategy, config.precision)
    with strategy.scope():
        with policy.dtype_policy(speed.precision):
            nets = build_networks(config, small_map_matmul=speed.small_map_matmul)
        gan = _cut(config, nets) if config.model == "cut" else CycleGAN(
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
            fused_step=speed.fused_step,
        )
        jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
        gan.compile(_optimizer(config, speed), jit_compile=jit)
    return gan


def _cut(config, nets):
    return CUT(**nets, nce_layers=nce_layer_names(config), lambda_nce=config.lambda_nce,
               nce_identity=config.nce_identity, nce_patches=config.nce_patches,
               nce_temperature=config.nce_temperature, flip_equivariance=config.nce_flip_equivariance,
               adversarial_loss=config.adversarial_loss,
               augmenter=augment.from_config(config), diffaugment_policy=config.diffaugment,
               image_pool_monet=_pool(config, 1), seed=config.seed)


def _pool(config, offset):
    if config.pool_size <= 0:
        return None
    return ImagePool(config.pool_size, (config.image_size, config.image_size, 3),
                     seed=config.seed * 10 + offset)


def generator_weights(gan):
    """G_monet's weights (``get_weights`` order), its EMA weights in place of the trained ones
    when the optimizer keeps them."""
    generator = gan.monet_generator
    optimizer = getattr(gan.optimizer, "inner_optimizer", gan.optimizer)
    averages = {}
    if optimizer.use_ema:
        averages = {id(v): optimizer._model_variables_moving_average[optimizer._get_variable_index(v)]
                    for v in generator.trainable_variables}
    return [keras.ops.convert_to_numpy(averages.get(id(v), v)) for v in generator.weights]


def save_generator(gan, config, path):
    """Save G_monet (its EMA weights when ema_decay > 0) as a standalone float32 ``.keras`` file,
    atomically; returns the saved model."""
    return _save_float32(generator_weights(gan), config, "monet_generator", path)


def save_photo_generator(gan, config, path):
    return _save_float32(gan.photo_generator.get_weights(), config, "photo_generator", path)


def _save_float32(weights, config, name, path):
    """Save a generator with ``weights`` atomically, as Keras's own layers computing in float32
    (variables are float32 under every policy), so the saved model runs float32 and loads
    without this package; returns that model."""
    with policy.dtype_policy("float32"):
        generator = networks.build_generator_from_config(config, name)
    generator.set_weights(weights)
    with atomic_path(path, suffix=".keras") as tmp:
        keras.saving.save_model(generator, tmp)
    return generator


def _check_resumable(run, config):
    if not os.path.exists(run.config_json):
        return
    previous = run.read_config()
    for field in previous.to_dict():
        if field not in _RESUME_MAY_CHANGE and getattr(previous, field) != getattr(config, field):
            raise MonetKerasError(
                f"{run.path} holds a run with {field}={getattr(previous, field)!r}, "
                f"not {getattr(config, field)!r}; use another --out or the same settings to resume")


def train(config: ExperimentConfig, strategy=None, verbose="auto", data=None, clock=None, reserve_s=0.0,
          callbacks=()) -> RunResult:
    """Train ``config`` into ``config.out_dir``, resuming from its last checkpoint if there is one.

    ``data``: the run's :class:`~monet_keras.data.source.DataFolder`, maybe checked already (the
    notebook hands its own on, so the images are checked once); default: found at ``config.data_dir``.
    ``clock``: the run's :class:`~monet_keras.train.budget.RunClock` with its budget (default: one
    started now with ``config.time_budget``). With a budget, training is planned to end
    ``reserve_s`` seconds (the caller's work after training: evaluation, figures) plus the
    measured images.zip time before it (:mod:`monet_keras.train.budget`). ``callbacks``: more Keras
    callbacks, run before the kit's own.
    """
    config.validate()
    start = time.time()
    clock = clock or budget.RunClock(budget.resolve_budget(config.time_budget))
    run = RunFolder(config.out_dir)
    os.makedirs(run.path, exist_ok=True)
    _check_resumable(run, config)
    keras.utils.set_random_seed(config.seed)
    strategy = strategy or runtime.pick_strategy(verbose=False)
    speed = policy.resolve(strategy, config.precision)
    if speed.tune_malloc:
        malloc.tune_malloc()
    logger.info(f"runs on {speed.describe()}")

    if config.batch_size % speed.replicas:
        raise MonetKerasError(f"bad parameter batch_size={config.batch_size}: a batch is split evenly over "
                              f"the {speed.replicas} devices, so it must be a multiple of {speed.replicas}")
    with runtime.run_scope(strategy):
        return _train(config, strategy, speed, run, verbose, data, clock, reserve_s, callbacks, start)


def _train(config, strategy, speed, run, verbose, data, clock, reserve_s, callbacks, start):
    train_data = training_data(config, data)
    held_out = f"; {len(train_data.holdout_names)} Monet held out" if train_data.holdout_names else ""
    logger.info(f"data: {train_data.n_monet} Monet ({train_data.monet.kind}), {train_data.n_photo} photos "
                f"({train_data.photo.kind}); sampling={config.sampling}, "
                f"{train_data.steps_per_epoch} steps per epoch{held_out}")
    write_text(run.config_json, config.to_json())
    if train_data.holdout_names:
        run.write_holdout_names(train_data.holdout_names)

    gan = build_gan(config, strategy, speed)
    initial_epoch = checkpoints.restore_latest(gan, run.checkpoints_dir)
    if initial_epoch:
        logger.info(f"resuming {run.path} from epoch {initial_epoch} of {config.epochs} "
                    f"(optimizer step {int(keras.ops.convert_to_numpy(gan.optimizer.iterations))})")

    timer = None
    if initial_epoch < config.epochs and clock.budget_s is not None:
        timer = _time_budget(config, gan, train_data, clock, reserve_s, initial_epoch)
    if initial_epoch >= config.epochs:
        logger.info(f"{run.path} already finished {initial_epoch} epochs; nothing to train")
    elif timer is not None and clock.remaining() - timer.reserve_s <= 0:
        timer.stopped = (f"the time budget ({budget.format_seconds(clock.budget_s)}) leaves no time to "
                         f"train: {budget.format_seconds(clock.elapsed())} spent, "
                         f"{budget.format_seconds(timer.reserve_s)} kept for images.zip and what follows; "
                         f"the generator is saved as it is")
        logger.warning(timer.stopped)
    else:
        photos = first_images(train_data.photo, config.image_size, SAMPLE_COUNT)
        schedule = timer or cb.LinearDecay(config.learning_rate, config.epochs, config.lr_decay_epochs)
        fit_callbacks = [
            *callbacks,
            cb.StopOnNonFinite(train_data.steps_per_epoch),
            schedule,
            cb.HistoryCSV(run.history_csv, initial_epoch, columns=timer and timer.history_columns),
            cb.SampleGrid(photos, run.sample_png),
            checkpoints.Checkpoint(run.checkpoints_dir),
        ]
        # A finite dataset is re-iterated (and so reshuffled) every epoch only when fit is not
        # given steps_per_epoch; a fixed steps_per_epoch comes with an endless dataset.
        gan.fit(train_data.dataset, epochs=config.epochs, initial_epoch=initial_epoch,
                steps_per_epoch=config.steps_per_epoch, callbacks=fit_callbacks, verbose=verbose,
                shuffle=False)
    if timer is not None:
        write_text(run.budget_json, json.dumps(timer.summary(), indent=2) + "\n")

    history = run.read_history()
    epochs_trained = (history[-1]["epoch"] if history else 0) - initial_epoch
    if history:
        plots.learning_curves(history, save_path=run.learning_curves_png)
    generator = save_generator(gan, config, run.monet_generator_keras)
    if config.model == "cyclegan":  # CUT has no Monet -> photo generator
        save_photo_generator(gan, config, run.photo_generator_keras)
    logger.info(f"saved {run.monet_generator_keras}")
    return RunResult(run.path, run.monet_generator_keras, history, epochs_trained, initial_epoch,
                     time.time() - start, generator, timer.planned_epochs if timer else None,
                     timer.stopped if timer else "")


def _time_budget(config, gan, train_data, clock, reserve_s, initial_epoch):
    """The :class:`~monet_keras.train.budget.TimeBudget` of this run: ``reserve_s`` plus images.zip's
    time, measured on a few batches of photos (when the run makes one)."""
    zip_s = 0.0
    if config.make_submission:
        zip_s = budget.measure_translation(gan.monet_generator, train_data.photo, config.image_size,
                                           train_data.n_photo, quality=config.jpeg_quality, clock=clock.clock)
    logger.info(f"reserved after training: {zip_s:.0f} s for images.zip, {reserve_s:.0f} s for the rest")
    return budget.TimeBudget(clock, reserve_s + zip_s, train_data.steps_per_epoch, config.epochs,
                             initial_epoch, config.learning_rate, config.lr_decay_epochs)
