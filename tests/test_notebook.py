"""The notebook: clean JSON in sync with its generator, one parameters cell, an end-to-end papermill
run at tiny size, and the helpers of its Setup and Data description sections."""

import ast
import dataclasses
import json
import os
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from monet_keras.config import ExperimentConfig
from monet_keras.data import source
from monet_keras.data.source import DataFolder, find_domain
from monet_keras.errors import MonetKerasError
from monet_keras.experiments import notebook as nb
from monet_keras.experiments import notebook_cells
from monet_keras.figures import describe, plots

pytest_plugins = ["notebook_runs"]  # one session fixture shared with test_experiments.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "monet_cyclegan.ipynb")
FIELDS = {f.name for f in dataclasses.fields(ExperimentConfig)}


def load_notebook():
    with open(NOTEBOOK, encoding="utf-8") as f:
        return json.load(f)


def cell_text(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


# --- the notebook file ------------------------------------------------------------------------

def test_notebook_is_clean_with_exactly_one_parameters_cell():
    cells = load_notebook()["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code"
    assigned = [node.targets[0].id for node in ast.parse(cell_text(tagged[0])).body]
    assert len(assigned) == len(set(assigned))
    assert set(assigned) <= FIELDS | {"backend"}  # chosen before Keras (and so the config) is used
    assert {"variant", "backend", "epochs", "batch_size", "image_size", "data_dir", "out_dir", "seed",
            "evaluate", "make_submission"} <= set(assigned)


def test_notebook_sections_follow_the_report():
    headings = [cell_text(c).splitlines()[0] for c in load_notebook()["cells"]
                if c["cell_type"] == "markdown"]
    sections = [h[3:] for h in headings if h.startswith("## ")]
    assert sections == ["Setup", "Data description", "Train the CycleGAN", "Learning curves", "Examples",
                        "Diagnostics", "Submission", "Evaluate", "Time budget", "Outputs"]


def test_committed_notebook_is_what_the_generator_writes():
    with open(NOTEBOOK, encoding="utf-8") as f:
        assert f.read() == notebook_cells.build(), "run make notebook"


# --- end to end under papermill -----------------------------------------------------------------

def test_papermill_run_leaves_every_output(experiment_runs):
    run = experiment_runs.run_dir("Os")
    figures = ("fig02_images_per_domain.png", "fig03_pixel_histograms.png", "learning_curves.png",
               "fig17_examples.png", "augmentation_examples.png", "diffaugment_examples.png",
               "self_adversarial_check.png", "memorization_report.png", "time_budget.png")
    for name in ("monet_cyclegan.ipynb", "papermill.log", "result.json", "config.json", "history.csv",
                 "monet_generator.keras", "photo_generator.keras", "self_adversarial_check.json",
                 "scores.json", "images.zip", "timing.json", *figures):
        assert os.path.getsize(os.path.join(run, name)) > 0, name
    for png in figures:
        with Image.open(os.path.join(run, png)) as image:
            assert image.format == "PNG"
    config = ExperimentConfig.load(os.path.join(run, "config.json"))
    assert (config.variant, config.image_size, config.base_filters, config.epochs) == ("Os", 32, 8, 1)
    with open(os.path.join(run, "scores.json"), encoding="utf-8") as f:
        scores = json.load(f)
    assert scores["n_generated"] == 10 and scores["n_real"] == 6
    assert scores["comparable_to_kaggle"] is False  # no InceptionV3 weights on test machines

    import zipfile
    with zipfile.ZipFile(os.path.join(run, "images.zip")) as archive:
        names = archive.namelist()
    photos = sorted(os.path.splitext(n)[0]
                    for n in os.listdir(os.path.join(experiment_runs.data_dir, "photo_jpg")))
    assert sorted(os.path.splitext(n)[0] for n in names) == photos

    executed = json.loads(open(os.path.join(run, "monet_cyclegan.ipynb"), encoding="utf-8").read())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] is not None for c in code)
    assert not any(o["output_type"] == "error" for c in code for o in c["outputs"])
    images = [o for c in code for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert len(images) == 9  # Figs. 2, 3, 16, 17, 11, 13, 15, the memorization report, the time budget
    text = "".join("".join(o.get("text", "")) for c in code for o in c["outputs"])
    assert "NOT comparable to Kaggle" in text


def test_papermill_run_of_cut(experiment_runs):
    # The kit's CUT variant through every cell: one generator, so no photo generator and no
    # self-adversarial check, but training, figures, the evaluation and images.zip as for Os.
    run = experiment_runs.run_dir("CUT")
    executed = json.loads(open(os.path.join(run, "monet_cyclegan.ipynb"), encoding="utf-8").read())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] is not None for c in code)
    assert not any(o["output_type"] == "error" for c in code for o in c["outputs"])
    config = ExperimentConfig.load(os.path.join(run, "config.json"))
    assert (config.variant, config.model) == ("CUT", "cut")
    for name in ("monet_generator.keras", "scores.json", "learning_curves.png", "fig17_examples.png"):
        assert os.path.getsize(os.path.join(run, name)) > 0, name
    for name in ("photo_generator.keras", "self_adversarial_check.png"):
        assert not os.path.exists(os.path.join(run, name)), name
    with zipfile.ZipFile(os.path.join(run, "images.zip")) as archive:
        assert len(archive.namelist()) == 10


def test_papermill_run_of_best(experiment_runs):
    # The parameters cell's learning_rate = None keeps Best's step; its epsilon is not in the cell.
    run = experiment_runs.run_dir("Best")
    config = ExperimentConfig.load(os.path.join(run, "config.json"))
    assert (config.variant, config.learning_rate, config.instance_norm_epsilon) == ("Best", 4e-4, 1e-5)
    assert os.path.getsize(os.path.join(run, "monet_generator.keras")) > 0


@pytest.mark.slow
def test_papermill_run_on_jax(experiment_runs, tmp_path):
    # The whole notebook on Keras's JAX backend: training, figures, the evaluation and images.zip.
    pytest.importorskip("jax")  # the oldest supported stack (requirements-kaggle.txt) has none
    from monet_keras.cli import main

    runs = tmp_path / "runs"
    argv = ["experiments", "--backend", "jax", "--data", experiment_runs.data_dir, "--out", str(runs),
            "--variants", "Os"]
    for key, value in dict(image_size="32", base_filters="4", epochs="1", steps_per_epoch="2").items():
        argv += ["-p", key, value]
    assert main(argv) == 0
    run = runs / "Os"
    with open(run / "papermill.log", encoding="utf-8") as f:
        log = f.read()
    assert "Keras backend: jax" in log and "runs on jax, 1 cpu device(s), float32" in log
    with open(run / "scores.json", encoding="utf-8") as f:
        assert json.load(f)["n_generated"] == 10
    with zipfile.ZipFile(run / "images.zip") as archive:
        assert len(archive.namelist()) == 10


# --- the data and the config ------------------------------------------------------------------

@pytest.fixture
def no_kaggle(monkeypatch, tmp_path):
    monkeypatch.setattr(source, "KAGGLE_INPUT", str(tmp_path / "no-kaggle-here"))


def test_config_from_namespace(demo_data_dir, no_kaggle, monkeypatch):
    monkeypatch.setattr(source, "on_kaggle", lambda: False)
    namespace = {"variant": "Us+DiffAug", "data_dir": str(demo_data_dir), "out_dir": "", "image_size": 32,
                 "steps_per_epoch": None, "lambda_cycle": 5.0, "strategy": object(), "np": np}
    config = nb.config_from_namespace(namespace)
    assert (config.sampling, config.diffaugment) == ("under", "color,translation,cutout")
    assert (config.image_size, config.lambda_cycle, config.steps_per_epoch) == (32, 5.0, None)
    assert config.out_dir == "runs/notebook" and config.data_dir == str(demo_data_dir)
    assert nb.changed_fields(config)["sampling"] == "under"
    with pytest.raises(MonetKerasError, match="image_size"):
        nb.config_from_namespace(dict(namespace, image_size=48))
    with pytest.raises(MonetKerasError, match="unknown variant 'Bogus'"):
        nb.config_from_namespace(dict(namespace, variant="Bogus"))
    # None keeps the variant's value, except where None is the field's own setting.
    kept = nb.config_from_namespace(dict(namespace, sampling=None, diffaugment=None, learning_rate=None,
                                         time_budget=None))
    assert (kept.sampling, kept.diffaugment) == ("under", "color,translation,cutout")
    assert kept.learning_rate == 2e-4
    assert kept.time_budget is None and kept.steps_per_epoch is None


def test_out_dir_defaults_to_kaggle_working_on_kaggle(monkeypatch):
    monkeypatch.setattr(source, "on_kaggle", lambda: True)
    assert nb.default_out_dir() == "/kaggle/working"


# --- data description --------------------------------------------------------------------------

def test_count_images(demo_data_dir):
    from conftest import DEMO_COUNTS

    assert describe.count_images(DataFolder.find(demo_data_dir)) == DEMO_COUNTS


def test_channel_histograms_match_numpy_on_the_decoded_jpegs(demo_data_dir):
    folder = os.path.join(demo_data_dir, "photo_jpg")  # the same JPEG bytes as photo_tfrec/
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))
    # Independent decode with PIL (libjpeg's accurate DCT, which pipeline.decode_image also uses).
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    expected = np.stack([np.histogram(pixels[..., c], bins=256, range=(0, 256))[0] for c in range(3)])
    photos = find_domain(demo_data_dir, "photo")
    counts, n_images = describe.channel_histograms(photos)  # all: order does not matter
    assert n_images == len(paths)
    np.testing.assert_array_equal(counts, expected)
    first, n_first = describe.channel_histograms(photos, max_images=3)
    assert n_first == 3 and (first.sum(axis=1) == 3 * 32 * 32).all()


def test_figures_draw_what_they_are_given(tmp_path):
    figure = plots.images_per_domain({"monet": 300, "photo": 7038}, save_path=str(tmp_path / "f2.png"))
    assert [p.get_height() for p in figure.axes[0].patches] == [300, 7038]
    counts = np.zeros((3, 256), np.int64)
    counts[0, 10], counts[1, :] = 4, 1
    figure = plots.pixel_histograms({"monet": (counts, 1), "photo": (counts, 1)},
                                    save_path=str(tmp_path / "f3.png"))
    red, green, _ = figure.axes[0].lines
    assert red.get_ydata()[10] == 1.0 and np.allclose(green.get_ydata(), 1 / 256)
    for name in ("f2.png", "f3.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"


def test_notebook_steps_check_the_data_once_and_skip_corrupt_records(corrupt_data_dir, tmp_path, monkeypatch):
    """The notebook's steps, called as its cells call them, on data with one broken record per
    domain: skip_corrupt = False stops at the check; True checks once, and every later step (the
    figures, training, examples, diagnostics, images.zip, the held-out paintings, evaluation)
    leaves the broken records out."""
    from conftest import DEMO_COUNTS

    from monet_keras.config import tiny
    from monet_keras.evaluate import features
    from monet_keras.figures import self_adversarial
    from monet_keras.train.training import train

    config = tiny("Os", data_dir=str(corrupt_data_dir), out_dir=str(tmp_path / "run"), holdout_monet=2)
    with pytest.raises(MonetKerasError,
                       match=r"bad monet data: .*monet05-1.tfrec: record 0: .*skip_corrupt = True"):
        nb.checked_data(config)
    config = config.replace(skip_corrupt=True)
    scans = []
    scan = source.scan
    monkeypatch.setattr(source, "scan", lambda *args, **kwargs: scans.append(args) or scan(*args, **kwargs))
    data = nb.checked_data(config)

    assert describe.count_images(data) == DEMO_COUNTS  # the broken records are not counted
    for path in nb.describe_data(config, data, max_images=100):
        assert Image.open(path).format == "PNG"
    result = train(config, verbose=0, data=data)
    saved = keras.saving.load_model(result.generator_path, compile=False)  # the steps use it in memory
    for in_memory, from_file in zip(result.generator.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(in_memory, from_file)
    assert Image.open(nb.example_translations(config, data, result.generator, count=3)).format == "PNG"
    self_adversarial.write_figures(config.out_dir, data, count=2)
    images_zip = nb.write_images_zip(config, data, result.generator)
    photo_names = sorted(n for n in os.listdir(corrupt_data_dir / "photo_jpg") if n != "broken.jpg")
    assert sorted(zipfile.ZipFile(images_zip).namelist()) == photo_names
    assert len(list(nb.translated_photos(config, data, result.generator_path))) == DEMO_COUNTS["photo"]

    held = open(tmp_path / "run" / "holdout_monet.txt").read().split()
    assert len(held) == 2 and "broken" not in held
    # Independent decode of the held-out JPEGs: PIL, then x / 127.5 - 1.
    want = np.stack([np.asarray(Image.open(corrupt_data_dir / "monet_jpg" / f"{name}.jpg"), np.float32)
                     / 127.5 - 1 for name in sorted(held)])
    got = nb.heldout_paintings(config, data)
    assert got.shape == want.shape
    # the same two images, in any order (pipeline.decode_image uses the accurate DCT, as PIL does)
    for image in got:
        assert min(float(np.max(np.abs(image - w))) for w in want) <= 1e-6
    extractor = features.standin_extractor(image_size=32)
    scores = nb.evaluate_run(config, data, images_zip, extractor=extractor)
    assert scores["n_real"] == 2 and scores["n_generated"] == DEMO_COUNTS["photo"]
    scores = nb.evaluate_run(config.replace(holdout_monet=0), data, images_zip, extractor=extractor)
    assert scores["n_real"] == DEMO_COUNTS["monet"]
    assert len(scans) == 2, "the data is scanned once per domain, at the check"
