"""The notebook's steps as functions, so that each cell of ``notebooks/monet_cyclegan.ipynb`` is a
few lines: build the config from the ``parameters`` cell, check the data, show a saved figure,
translate example photos, write ``images.zip`` and evaluate it.

Every figure is written as a PNG into the run folder first and then displayed from that file,
so a headless run (papermill, CI) leaves the same figures on disk as an interactive one.

The data folder comes from :func:`monet_keras.data.source.find_data` (the given ``data_dir``,
else Kaggle's input folder, else built-in demo data). :func:`checked_data` checks its images
once; every later step reads through the DataFolder it returns, so the records ``skip_corrupt``
leaves out are left out everywhere (figures, training, examples, images.zip, evaluation).
"""

import dataclasses
import logging
import os
import types
import typing

from monet_keras.config import ExperimentConfig, variant
from monet_keras.data import source
from monet_keras.train.run_folder import RunFolder

logger = logging.getLogger(__name__)

NOTEBOOK_OUT_DIR = "runs/notebook"  # default run folder off Kaggle


def default_out_dir():
    """``/kaggle/working`` on Kaggle (where Kaggle collects outputs and ``images.zip``), else
    ``runs/notebook``."""
    return source.KAGGLE_WORKING if source.on_kaggle() else NOTEBOOK_OUT_DIR


def default_demo_dir(out_dir):
    """Where the demo data goes when it is needed: ``demo_data/`` next to the run folder, so the
    runs of several variants in one folder share one copy."""
    return os.path.join(os.path.dirname(os.path.abspath(out_dir)), "demo_data")


def config_from_namespace(namespace, strategy=None):
    """The run's ExperimentConfig from the notebook's parameter variables.

    ``namespace``: a dict such as the notebook's ``globals()``. Its ``variant`` picks the report's
    model; every other name that is an ExperimentConfig field overrides that variant (so any
    field papermill injects takes effect, whether or not the ``parameters`` cell lists it), except
    a ``None`` where the field has no None setting: that keeps the variant's value (the cell's
    ``learning_rate = None`` runs each variant with its own rate).
    ``out_dir=""`` means :func:`default_out_dir`; ``data_dir=""`` means
    :func:`monet_keras.data.source.find_data` (Kaggle's data, else demo data).
    """
    overrides = {f.name: namespace[f.name] for f in dataclasses.fields(ExperimentConfig)
                 if f.name in namespace and f.name != "variant"
                 and (namespace[f.name] is not None or _takes_none(f))}
    name = namespace.get("variant", "Os")
    config = variant(name, **overrides)
    if not config.out_dir:
        config = config.replace(out_dir=default_out_dir())
    found = source.find_data(config.data_dir, default_demo_dir(config.out_dir), strategy)
    logger.info(found.describe())
    config = config.replace(data_dir=found.path)
    logger.info(f"run folder: {os.path.abspath(config.out_dir)}")
    return config


def _takes_none(field):
    """Whether None is one of the field's own settings (``steps_per_epoch``, ``time_budget``)."""
    return isinstance(field.type, types.UnionType) and type(None) in typing.get_args(field.type)


def changed_fields(config):
    """``{field: value}`` where ``config`` differs from the default ExperimentConfig (the Os model)."""
    default = ExperimentConfig().to_dict()
    return {k: v for k, v in config.to_dict().items() if default[k] != v}


def show(path):
    """Display a saved PNG in the notebook (or print its path outside IPython)."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Image(filename=path))
    else:
        print(f"figure: {path}")


def checked_data(config):
    """The run's data (a :class:`~monet_keras.data.source.DataFolder` at ``config.data_dir``) with
    every image checked once: bad data stops here with one error naming the first bad record, or
    with ``config.skip_corrupt`` is marked to be left out by every later step."""
    return source.DataFolder.find(config.data_dir).checked(config.skip_corrupt)


def describe_data(config, data, max_images=100):
    """Draw and save the data description figures (Figs. 2 and 3) of ``data`` (:func:`checked_data`);
    return their paths."""
    from monet_keras.figures import describe, plots

    counts = describe.count_images(data)
    print("images per domain: " + ", ".join(f"{d} {n:,}" for d, n in counts.items()))
    run = RunFolder(config.out_dir)
    plots.images_per_domain(counts, save_path=run.images_per_domain_png)
    histograms = {d: describe.channel_histograms(data.domain(d), max_images) for d in counts}
    plots.pixel_histograms(histograms, save_path=run.pixel_histograms_png)
    return run.images_per_domain_png, run.pixel_histograms_png


def example_translations(config, data, generator, count=6):
    """Translate the first ``count`` photos of ``data`` with ``generator`` (the model training
    returned, or a ``.keras`` path); save the pairs (Fig. 17)."""
    import keras

    from monet_keras.data.pipeline import first_images
    from monet_keras.figures import plots
    from monet_keras.submit.translate import load_generator

    generator = load_generator(generator)
    photos = first_images(data.photo, config.image_size, count)
    fakes = generator(photos, training=False)
    path = RunFolder(config.out_dir).examples_png
    plots.translation_grid(keras.ops.convert_to_numpy(photos), keras.ops.convert_to_numpy(fakes),
                           title=f"{config.variant}: photo -> Monet", save_path=path)
    return path


def write_images_zip(config, data, generator):
    """Translate every photo of ``data`` with ``generator`` (a model or a ``.keras`` path) into
    ``RUN_DIR/images.zip`` and validate it; returns the zip's path.

    Fewer photos than Kaggle's 7,000 (demo data) are accepted with a note: such a zip checks the
    pipeline but is not a valid Kaggle submission.
    """
    from monet_keras.submit import translate, zipcheck

    path = RunFolder(config.out_dir).images_zip
    report = translate.write_submission(generator, data.photo, path, quality=config.jpeg_quality)
    print(report.summary())
    allow_small = report.count < zipcheck.MIN_COUNT
    min_count, max_count = zipcheck.count_range(allow_small)
    zipcheck.require_valid_zip(path, min_count, max_count)
    if allow_small:
        print(f"{report.count} images: fine for checking the pipeline, but Kaggle needs "
              f"{zipcheck.MIN_COUNT:,} to {zipcheck.MAX_COUNT:,}")
    else:
        print(f"{path} is a valid submission")
    return path


def translated_photos(config, data, generator, batch_size=16):
    """Every photo of ``data`` translated by ``generator`` (a model or a ``.keras`` path), as an
    image source for the evaluation.

    The generator runs eagerly on the batches (on the GPU/TPU when there is one); only reading
    and decoding happen in tf.data, which runs on the CPU.
    """
    import keras

    from monet_keras.data.pipeline import iterate, load_images
    from monet_keras.evaluate import features
    from monet_keras.submit.translate import load_generator

    generator = load_generator(generator)
    batches = load_images(data.photo, config.image_size).batch(batch_size)

    class TranslatedPhotos(features.ImageSource):
        description = f"photos translated by {generator.name}"

        def __iter__(self):
            for photos in iterate(data.photo, batches):
                yield from keras.ops.convert_to_numpy(generator(photos, training=False))

    return TranslatedPhotos()


def pick_extractor(weights="auto"):
    """Kaggle's extractor if ``weights`` (or ``$MONET_KERAS_INCEPTION_WEIGHTS``) names a .pb graph,
    else Keras's ImageNet InceptionV3 if its weights can be had, else the labelled stand-in extractor."""
    from monet_keras.evaluate import features

    try:
        return features.extractor_for_weights(weights)
    except features.WeightsUnavailable as e:
        logger.info(f"{e}")
        logger.info(f"using the stand-in extractor instead: numbers {features.NOT_COMPARABLE}")
        return features.standin_extractor()


def heldout_paintings(config, data):
    """The Monet paintings of ``data`` the run kept out of training (``holdout_monet``), as one
    array, or None."""
    import numpy as np

    from monet_keras.data.pipeline import iterate, load_images

    names = set(RunFolder(config.out_dir).holdout_names())
    if config.holdout_monet <= 0 or not names:
        return None
    paintings = load_images(data.monet, with_names=True)
    return np.stack([image for name, image in iterate(data.monet, paintings)
                     if name.decode("utf-8") in names])


def evaluate_run(config, data, generated, extractor=None):
    """MiFID estimate, FID, KID and the memorization report of ``generated`` against the Monet
    paintings of ``data``.

    ``generated``: ``images.zip`` or the source from :func:`translated_photos`. The paintings are
    the run's held-out ones when it kept some out of training (``holdout_monet``), else all of
    them (trained on, so the estimate is optimistic). Writes ``RUN_DIR/scores.json`` and
    ``RUN_DIR/memorization_report.png``; returns the scores dict. These are local estimates:
    Kaggle scores against paintings no participant sees.
    """
    from monet_keras.evaluate import metrics

    extractor = extractor or pick_extractor(config.inception_weights or "auto")
    run = RunFolder(config.out_dir)
    real = heldout_paintings(config, data)
    if real is None:
        real = data.monet
        print("real paintings: all of the data folder's, including those trained on")
    else:
        print(f"real paintings: the {len(real)} held out of training")
    scores = metrics.evaluate(generated, real, extractor,
                              json_path=run.scores_json, report_path=run.memorization_report_png, verbose=0)
    print(metrics.format_scores(scores))
    return scores


def reserve_after_training(config, data, extractor=None):
    """Seconds the time budget keeps for the notebook's work after training other than images.zip:
    the evaluation (``extractor`` timed on two batches, for every photo and painting) and the
    figures (:data:`monet_keras.train.budget.FIGURES_S`)."""
    from monet_keras.figures import describe
    from monet_keras.train import budget

    seconds = budget.FIGURES_S
    if config.evaluate and extractor is not None:
        seconds += budget.measure_evaluation(extractor, sum(describe.count_images(data).values()))
    return seconds


def time_report(config, run_clock, result):
    """Where the run's time went, against its budget: prints a table, writes ``RUN_DIR/timing.json``
    and the figure ``RUN_DIR/time_budget.png``; returns the figure's path.

    ``run_clock``: the notebook's :class:`~monet_keras.train.budget.RunClock`; ``result``: training's
    :class:`~monet_keras.train.training.RunResult` (planned and trained epochs)."""
    import json

    from monet_keras.figures import plots
    from monet_keras.train import budget
    from tfrecords_tools.atomic import write_text

    report = run_clock.report()
    phases = report["phases_s"]
    report["phases_s"] = {"setup and data": max(0.0, round(report["elapsed_s"] - sum(phases.values()), 3)),
                          **phases}
    report.update(planned_epochs=result.planned_epochs, epochs=result.resumed_from + result.epochs_trained,
                  epochs_trained=result.epochs_trained, stopped=result.stopped)
    run = RunFolder(config.out_dir)
    write_text(run.timing_json, json.dumps(report, indent=2) + "\n")
    budget_s = report["budget_s"]
    planned = "-" if result.planned_epochs is None else result.planned_epochs
    print(f"epochs: planned {planned}, trained {report['epochs']} ({result.epochs_trained} in this run)"
          + (f"; {result.stopped}" if result.stopped else ""))
    for name, seconds in report["phases_s"].items():
        print(f"{name:<16} {seconds:>9.1f} s")
    print(f"{'total':<16} {report['elapsed_s']:>9.1f} s of "
          + ("no budget" if budget_s is None else f"a {budget.format_seconds(budget_s)} budget"))
    plots.time_budget(report["phases_s"], budget_s, save_path=run.time_budget_png)
    return run.time_budget_png

