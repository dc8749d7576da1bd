"""The cells of the kit's one notebook, and the notebook they make.

The notebook (``notebooks/monet_cyclegan.ipynb`` in the repository) is generated from
:data:`CELLS`: edit the cells here, then ``make notebook`` (``python -m
monet_keras.experiments.notebook_cells notebooks/monet_cyclegan.ipynb``). It travels inside the
package, so the batch runner and ``package-kaggle`` use :func:`build` and work from an installed
wheel as from a checkout; tests/test_notebook.py checks that the committed file is what
:func:`build` writes (no outputs, no execution counts).
"""

import sys

import nbformat

from monet_keras.config import VARIANTS

NOTEBOOK_NAME = "monet_cyclegan.ipynb"


def variants_table():
    """Markdown: each named variant's settings, the report's six first."""
    switches = ("sampling", "augment", "diffaugment")
    rows = ["| variant | sampling | `augment` | `diffaugment` | other settings |", "|---|---|---|---|---|"]
    for name, fields in VARIANTS.items():
        sampling = {"over": "over (Os)", "under": "under (Us)"}[fields["sampling"]]
        other = ", ".join(f"`{key}={value}`" for key, value in fields.items() if key not in switches)
        rows.append(f"| {name} | `{fields['sampling']}`: {sampling} | {fields.get('augment', False)} "
                    f"| `{fields.get('diffaugment', '') or '(off)'}` | {other or 'as in the report'} |")
    return "\n".join(rows)


CELLS = [
    ("markdown", """\
# Photos to Monet paintings with a CycleGAN

A parameterised notebook for Kaggle's *I'm Something of a Painter Myself* (`gan-getting-started`),
built on the `monet_keras` library: it trains one of the report's six CycleGAN models or one of the
kit's own variants, draws its figures, estimates its MiFID and writes `images.zip`. For a
submission, set `variant = "Best"`: the report's Os with the settings that made better paintings
in the kit's quality benchmark.

* **On Kaggle**: add the competition data and the `monet-keras` dataset (the library, see
  `python -m monet_keras package-kaggle`), pick an accelerator, then *Run all*.
* **Headless**: `papermill notebooks/monet_cyclegan.ipynb out.ipynb -p variant Us -p epochs 5`, or the
  report's six variants with `python -m monet_keras experiments --data DIR --out runs/`.

Every figure is also saved as a PNG in the run folder (`out_dir`)."""),
    ("code", """\
# Parameters: names are ExperimentConfig fields (monet_keras/config.py). Any other field of it
# (e.g. lambda_cycle, aug_rotation, pool_size) can be added here or passed with papermill's -p.
variant = "Os"            # the report's Os, Us, Os+Aug, Us+Aug, Os+DiffAug, Us+DiffAug; or CUT, Best
data_dir = ""             # "" = Kaggle input folder (GCS path on a TPU), else built-in demo data
out_dir = ""              # "" = /kaggle/working on Kaggle, else runs/notebook
epochs = 25
batch_size = 1
steps_per_epoch = None    # None = one full epoch of the sampling scheme
image_size = 256
base_filters = 64
learning_rate = None      # None = the variant's: 2e-4 (the report's), 4e-4 (Best)
lr_decay_epochs = 0
cycle_noise_std = 0.0     # report eq. 8 ("adversarial self-defense"): 0.08 in the report's test
holdout_monet = 0
skip_corrupt = False      # True = leave out (and count) unreadable or odd images instead of stopping
seed = 42
backend = "auto"          # Keras backend: auto = JAX on a TPU VM (Kaggle's TPU image), else TensorFlow
precision = "auto"        # auto = float32 on CPU/GPU, bfloat16 on TPU
time_budget = "auto"      # whole run: "4h30m", "90m", "600s", seconds; auto = Kaggle's 300 min - 15; None
evaluate = True           # MiFID estimate and memorization report
inception_weights = ""    # "" = InceptionV3 (Keras, ImageNet); a classify_image_graph_def.pb = Kaggle's
make_submission = True    # images.zip in out_dir
jpeg_quality = 95""", ["parameters"]),
    ("markdown", """\
## Setup

Install the library if needed (from the `monet-keras` Kaggle dataset, offline), choose the Keras
backend before anything imports Keras (on Kaggle's TPU image only JAX can drive the TPU), spread
the run over the devices (TPU, GPUs or CPU) and find the data."""),
    ("code", """\
import glob
import importlib.util
import os
import subprocess
import sys

# The library: installed already (pip install), else the wheel in the `monet-keras` Kaggle
# dataset (made by `monet-keras package-kaggle`), installed offline and without dependencies,
# so Kaggle's preinstalled packages stay as they are.
if importlib.util.find_spec("monet_keras") is None:
    wheels = sorted(glob.glob("/kaggle/input/**/monet_keras-*.whl", recursive=True))
    if not wheels:
        raise RuntimeError("monet_keras is not installed: attach the monet-keras dataset "
                           "(made by `monet-keras package-kaggle`) or pip install the kit")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", wheels[-1]],
                   check=True)
import monet_keras
from monet_keras.accel import backends

keras_backend = backends.choose_backend(backend)  # before anything imports Keras
from monet_keras.train import budget  # noqa: E402

run_clock = budget.RunClock()  # the time budget counts from here
print(f"monet_keras {monet_keras.__version__} from {os.path.dirname(monet_keras.__file__)}; "
      f"Keras backend: {keras_backend}")"""),
    ("code", """\
from monet_keras.accel import runtime
from monet_keras.experiments import notebook as nb
from monet_keras.train import training
from monet_keras.train.run_folder import RunFolder
from tfrecords_tools.console import log_to_console

log_to_console()  # the kit's progress messages in the cell outputs
strategy = runtime.pick_strategy()
config = nb.config_from_namespace(globals(), strategy)
run_clock.set_budget(config.time_budget)
run = RunFolder(config.out_dir)
print(f"variant {config.variant}; differs from the default Os model in: {nb.changed_fields(config)}")"""),
    ("markdown", """\
## Data description

Every image is checked once, here: unreadable or odd ones stop the notebook with one line naming
the first, or with `skip_corrupt = True` are left out of everything below. Then how many images
each domain has (report Fig. 2) and the per-channel pixel distributions of both domains (Fig. 3,
from the first 100 images of each)."""),
    ("code", """\
data = nb.checked_data(config)
domains_png, histograms_png = nb.describe_data(config, data, max_images=100)
nb.show(domains_png)
nb.show(histograms_png)"""),
    ("markdown", f"""\
## Train the CycleGAN

The parameters that switch between the named variants: the report's six models, then the kit's
own (everything not listed as in the report: U-Net generators, PatchGAN discriminators,
lambda_cycle = 10, identity 0.5 * lambda_cycle, Adam 2e-4):

{variants_table()}

Training resumes from the run folder's last checkpoint when it is run again. With a
`time_budget`, the run times its steps and plans how many epochs fit, keeping time for
`images.zip`, the evaluation and the figures; it stops at an epoch boundary inside the plan
(see `budget.json` in the run folder)."""),
    ("code", """\
extractor = nb.pick_extractor() if config.evaluate else None
reserve_s = nb.reserve_after_training(config, data, extractor) if run_clock.budget_s else 0.0
with run_clock.phase("training"):
    result = training.train(config, strategy=strategy, data=data, clock=run_clock, reserve_s=reserve_s)
print(f"{result.epochs_trained} epoch(s) trained in {result.seconds:.0f} s; "
      f"generator: {result.generator_path}")"""),
    ("markdown", """\
## Learning curves

Adversarial losses of both generators and both discriminators, and the cycle-consistency loss,
per epoch (report Fig. 16 a-e), from the run's `history.csv`."""),
    ("code", """\
with run_clock.phase("figures"):
    nb.show(run.learning_curves_png)"""),
    ("markdown", """\
## Examples

Photos and their Monet-style translation by the trained generator (report Fig. 17)."""),
    ("code", """\
with run_clock.phase("figures"):
    nb.show(nb.example_translations(config, data, result.generator, count=6))"""),
    ("markdown", """\
## Diagnostics

The training augmentation (report Fig. 11) and DiffAugment's operations (Fig. 13) on a few
photos, and the self-adversarial check (Fig. 15, eq. 8): images reconstructed through both
generators with and without N(0, 0.08) noise on the intermediate fake. A model that hides its
input in invisible noise reconstructs well without the noise and badly with it."""),
    ("code", """\
from monet_keras.figures import self_adversarial

with run_clock.phase("figures"):
    for png in self_adversarial.write_figures(run.path, data):
        nb.show(png)"""),
    ("markdown", """\
## Submission

Every photo translated into `images.zip` in the run folder (on Kaggle: `/kaggle/working/images.zip`)
and checked as Kaggle would: a flat zip of 7,000 to 10,000 JPEGs of 256x256x3."""),
    ("code", """\
images_zip = None
if config.make_submission:
    with run_clock.phase("images.zip"):
        images_zip = nb.write_images_zip(config, data, result.generator)"""),
    ("markdown", """\
## Evaluate

A **local estimate** of Kaggle's MiFID (FID divided by the thresholded memorization distance), with
KID and the memorization report, against the Monet paintings in the data folder. Kaggle scores
against paintings nobody sees, so the numbers differ from the leaderboard's. With
`inception_weights` set to `classify_image_graph_def.pb` (attach a Kaggle dataset that holds it)
the features are Kaggle's own (the 2015 Inception graph); otherwise Keras's ImageNet InceptionV3,
and without its weights a stand-in extractor whose numbers are labelled *NOT comparable to Kaggle*."""),
    ("code", """\
if config.evaluate:
    with run_clock.phase("evaluation"):
        generated = images_zip or nb.translated_photos(config, data, result.generator)
        scores = nb.evaluate_run(config, data, generated, extractor=extractor)
        nb.show(run.memorization_report_png)"""),
    ("markdown", """\
## Time budget

Where the time went: planned and trained epochs, and the seconds of each part of the run
against `time_budget` (also in `timing.json` in the run folder)."""),
    ("code", """\
nb.show(nb.time_report(config, run_clock, result))"""),
    ("markdown", """\
## Outputs

Everything this run left in its folder."""),
    ("code", """\
for name in sorted(os.listdir(run.path)):
    print(name)"""),
]


def build():
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for kind, source, *tags in CELLS:
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        cell.pop("id", None)
        if tags:
            cell.metadata["tags"] = tags[0]
        notebook.cells.append(cell)
    notebook.nbformat_minor = 4  # no cell ids: stable diffs
    nbformat.validate(notebook)
    return nbformat.writes(notebook) + "\n"


def write(path):
    """Write the notebook to ``path``; returns ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(build())
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m monet_keras.experiments.notebook_cells OUT.ipynb")
    print(f"wrote {write(sys.argv[1])}")
