"""The run folder (RUN_DIR): the one place that knows the name of every file a run leaves.

    config.json                  the run's ExperimentConfig
    history.csv                  one row per finished epoch (1-based ``epoch``, losses, learning
                                 rate, seconds)
    samples/epoch_NNN.png        fixed photos translated after each epoch
    learning_curves.png          the losses per epoch (report Fig. 16)
    checkpoints/                 epoch-NNNN.npz, see :mod:`monet_keras.train.checkpoints`
    monet_generator.keras        photo -> Monet; loads with ``keras.saving.load_model`` alone
    photo_generator.keras        Monet -> photo, for the self-adversarial check
    holdout_monet.txt            the Monet paintings kept out of training, one name a line
    budget.json                  the time budget's plan: budget, reserve, planned epochs, why it stopped
    timing.json, time_budget.png where the notebook's time went, against the budget
    images.zip                   the submission
    scores.json, memorization_report.png                   the evaluation
    fig02_images_per_domain.png, fig03_pixel_histograms.png, fig17_examples.png   the notebook's figures
    augmentation_examples.png, diffaugment_examples.png,
    self_adversarial_check.png, self_adversarial_check.json                       the ``figures`` command
    monet_cyclegan.ipynb, papermill.log, result.json       the batch runner's record of the run
"""

import csv
import io
import os

from monet_keras.config import ExperimentConfig
from tfrecords_tools.atomic import write_text


def _file(name, doc):
    return property(lambda self: os.path.join(self.path, name), doc=doc)


class RunFolder:
    """Paths of the files of the run folder ``path``, and readers of the ones read back."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def __repr__(self):
        return f"RunFolder({self.path!r})"

    config_json = _file("config.json", "the run's ExperimentConfig")
    history_csv = _file("history.csv", "one row per finished epoch")
    samples_dir = _file("samples", "the sample grid of each epoch")
    learning_curves_png = _file("learning_curves.png", "losses per epoch (Fig. 16)")
    checkpoints_dir = _file("checkpoints", "model and optimizer state of the last epochs")
    monet_generator_keras = _file("monet_generator.keras", "the trained photo -> Monet generator")
    photo_generator_keras = _file("photo_generator.keras", "the trained Monet -> photo generator")
    holdout_monet_txt = _file("holdout_monet.txt", "names of the Monet paintings kept out of training")
    budget_json = _file("budget.json", "the time budget's plan and why training stopped")
    timing_json = _file("timing.json", "seconds per phase of the notebook run, against the budget")
    time_budget_png = _file("time_budget.png", "where the time went (the notebook's last figure)")
    images_zip = _file("images.zip", "the submission")
    scores_json = _file("scores.json", "MiFID estimate, FID, KID, memorization distance")
    memorization_report_png = _file("memorization_report.png", "the memorization report")
    images_per_domain_png = _file("fig02_images_per_domain.png", "images per domain (Fig. 2)")
    pixel_histograms_png = _file("fig03_pixel_histograms.png", "per-channel pixel histograms (Fig. 3)")
    examples_png = _file("fig17_examples.png", "photos and their translation (Fig. 17)")
    augmentation_examples_png = _file("augmentation_examples.png", "the training augmentation (Fig. 11)")
    diffaugment_examples_png = _file("diffaugment_examples.png", "DiffAugment's operations (Fig. 13)")
    self_adversarial_check_png = _file("self_adversarial_check.png", "the self-adversarial check (Fig. 15)")
    self_adversarial_check_json = _file("self_adversarial_check.json", "the self-adversarial check's numbers")
    notebook_ipynb = _file("monet_cyclegan.ipynb", "the notebook as the batch runner executed it")
    papermill_log = _file("papermill.log", "papermill's log of that execution")
    result_json = _file("result.json", "the batch runner's status of the run")

    def sample_png(self, epoch):
        """The sample grid after 1-based ``epoch``."""
        return os.path.join(self.samples_dir, f"epoch_{epoch:03d}.png")

    def read_config(self):
        return ExperimentConfig.load(self.config_json)

    def read_history(self):
        return read_history(self.history_csv)

    def write_holdout_names(self, names):
        write_text(self.holdout_monet_txt, "".join(f"{name}\n" for name in names))

    def holdout_names(self):
        """The held-out Monet paintings' names ([] when the run held none out)."""
        if not os.path.exists(self.holdout_monet_txt):
            return []
        with open(self.holdout_monet_txt, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]


def read_history(path):
    """A history.csv as a list of dicts with float values (``epoch`` as int); [] when there is none."""
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in rows]


def write_history(path, rows):
    """Replace the history.csv at ``path`` with ``rows`` (columns: the union, in order of appearance)."""
    if not rows:
        if os.path.exists(path):
            os.remove(path)
        return
    columns = list(rows[0])
    for row in rows[1:]:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
