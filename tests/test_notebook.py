"""The notebook: clean JSON in sync with its generator, one parameters cell, an end-to-end papermill
run at tiny size, and the helpers of its Setup and Data description sections."""

import ast
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from monet_keras.experiments import notebook_cells
from monet_keras.figures import describe
from monet_keras.figures import plots
from monet_keras.accel import runtime
from monet_keras.experiments import notebook as nb
from monet_keras.config import ExperimentConfig
from monet_keras.errors import MonetKerasError
pytest_plugins = ["notebook_runs"]  # one session fixture shared with test_experiments.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "monet_cyclegan.ipynb")
FIELDS = {f.name for f in dataclasses.fields(ExperimentConfig)}


def load_notebook():
    with open(NOTEBOOK, encoding="utf-8") as f:
        return json.load(f)


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


# --- the notebook file ------------------------------------------------------------------------

def test_notebook_is_clean_with_exactly_one_parameters_cell():
    cells = load_notebook()["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code"
    assigned = [node.targets[0].id for node in ast.parse(source(tagged[0])).body]
    assert len(assigned) == len(set(assigned))
    assert set(assigned) <= FIELDS
    assert {"variant", "epochs", "batch_size", "image_size", "data_dir", "out_dir", "seed", "evaluate",
            "make_submission"} <= set(assigned)


def test_notebook_sections_follow_the_report():
    headings = [source(c).splitlines()[0] for c in load_notebook()["cells"] if c["cell_type"] == "markdown"]
    sections = [h[3:] for h in headings if h.startswith("## ")]
    assert sections == ["Setup", "Data description", "Train the CycleGAN", "Learning curves", "Examples",
                        "Diagnostics", "Submission", "Evaluate", "Outputs"]


def test_committed_notebook_is_what_the_generator_writes():
    with open(NOTEBOOK, encoding="utf-8") as f:
        assert f.read() == notebook_cells.build(), "run make notebook"


# --- end to end under papermill -----------------------------------------------------------------

def test_papermill_run_leaves_every_output(experiment_runs):
    run = experiment_runs.run_dir("Os")
    figures = ("fig02_images_per_domain.png", "fig03_pixel_histograms.png", "learning_curves.png",
               "fig17_examples.png", "augmentation_examples.png", "diffaugment_examples.png",
               "self_adversarial_check.png", "memorization_report.png")
    for name in ("monet_cyclegan.ipynb", "papermill.log", "result.json", "config.json", "history.csv",
                 "monet_generator.keras", "photo_generator.keras", "self_adversarial_check.json",
                 "scores.json", "images.zip", *figures):
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
    photos = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(experiment_runs.data_dir, "photo_jpg")))
    assert sorted(os.path.splitext(n)[0] for n in names) == photos

    executed = json.loads(open(os.path.join(run, "monet_cyclegan.ipynb"), encoding="utf-8").read())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] is not None for c in code)
    assert not any(o["output_type"] == "error" for c in code for o in c["outputs"])
    images = [o for c in code for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert len(images) == 8  # Figs. 2, 3, 16, 17, 11, 13, 15 and the memorization report
    text = "".join("".join(o.get("text", "")) for c in code for o in c["outputs"])
    assert "NOT comparable to Kaggle" in text


# --- finding the data ------------------------------------------------------------------------

@pytest.fixture
def no_kaggle(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "KAGGLE_INPUT", str(tmp_path / "no-kaggle-here"))


def test_given_data_dir_wins(demo_data_dir, monkeypatch):
    monkeypatch.setattr(runtime, "KAGGLE_INPUT", str(demo_data_dir))
    source = nb.find_data(str(demo_data_dir), demo_dir="unused")
    assert source == nb.DataSource(str(demo_data_dir), "given")


def test_given_data_dir_must_exist(tmp_path, no_kaggle):
    with pytest.raises(MonetKerasError, match="data folder not found: .*missing"):
        nb.find_data(str(tmp_path / "missing"), demo_dir=str(tmp_path / "demo"))


def test_kaggle_input_folder_is_found(demo_data_dir, monkeypatch, tmp_path):
    kaggle = tmp_path / "kaggle" / "input" / "gan-getting-started"
    shutil.copytree(demo_data_dir, kaggle)
    monkeypatch.setattr(runtime, "KAGGLE_INPUT", str(kaggle))
    assert nb.find_data("", demo_dir=str(tmp_path / "demo")) == nb.DataSource(str(kaggle), "kaggle")
    assert not (tmp_path / "demo").exists()


def test_demo_data_is_made_once_when_nothing_else_is_there(tmp_path, no_kaggle, monkeypatch):
    demo = str(tmp_path / "demo")
    source = nb.find_data("", demo_dir=demo, demo_monet=3, demo_photos=4, demo_size=32)
    assert source == nb.DataSource(demo, "demo")
    assert len(os.listdir(os.path.join(demo, "monet_jpg"))) == 3
    assert len(os.listdir(os.path.join(demo, "photo_jpg"))) == 4
    import tfrecords_tools.demo

    def must_not_run(*args, **kwargs):
        raise AssertionError("demo data rebuilt")

    monkeypatch.setattr(tfrecords_tools.demo, "make_demo", must_not_run)
    assert nb.find_data("", demo_dir=demo) == source


def test_config_from_namespace(demo_data_dir, no_kaggle, monkeypatch):
    monkeypatch.setattr(runtime, "on_kaggle", lambda: False)
    namespace = {"variant": "Us+DiffAug", "data_dir": str(demo_data_dir), "out_dir": "", "image_size": 32,
                 "steps_per_epoch": None, "lambda_cycle": 5.0, "strategy": object(), "np": np}
    config = nb.config_from_namespace(namespace, log=lambda *_: None)
    assert (config.sampling, config.diffaugment) == ("under", "color,translation,cutout")
    assert (config.image_size, config.lambda_cycle, config.steps_per_epoch) == (32, 5.0, None)
    assert config.out_dir == "runs/notebook" and config.data_dir == str(demo_data_dir)
    assert nb.changed_fields(config)["sampling"] == "under"
    with pytest.raises(MonetKerasError, match="image_size"):
        nb.config_from_namespace(dict(namespace, image_size=48), log=lambda *_: None)
    with pytest.raises(MonetKerasError, match="unknown variant 'Bogus'"):
        nb.config_from_namespace(dict(namespace, variant="Bogus"), log=lambda *_: None)


def test_out_dir_defaults_to_kaggle_working_on_kaggle(monkeypatch):
    monkeypatch.setattr(runtime, "on_kaggle", lambda: True)
    assert nb.default_out_dir() == "/kaggle/working"


# --- data description --------------------------------------------------------------------------

def test_count_images(demo_data_dir):
    from conftest import DEMO_COUNTS

    assert describe.count_images(demo_data_dir) == DEMO_COUNTS


def test_channel_histograms_match_numpy_on_the_decoded_jpegs(demo_data_dir):
    folder = os.path.join(demo_data_dir, "photo_jpg")  # the same JPEG bytes as photo_tfrec/
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))
    # Independent decode with PIL (libjpeg's accurate DCT, which data.decode_image also uses).
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    expected = np.stack([np.histogram(pixels[..., c], bins=256, range=(0, 256))[0] for c in range(3)])
    counts, n_images = describe.channel_histograms(demo_data_dir, "photo")  # all: order does not matter
    assert n_images == len(paths)
    np.testing.assert_array_equal(counts, expected)
    first, n_first = describe.channel_histograms(demo_data_dir, "photo", max_images=3)
    assert n_first == 3 and (first.sum(axis=1) == 3 * 32 * 32).all()


def test_figures_draw_what_they_are_given(tmp_path):
    figure = plots.images_per_domain({"monet": 300, "photo": 7038}, save_path=str(tmp_path / "f2.png"))
    assert [p.get_height() for p in figure.axes[0].patches] == [300, 7038]
    counts = np.zeros((3, 256), np.int64)
    counts[0, 10], counts[1, :] = 4, 1
    figure = plots.pixel_histograms({"monet": (counts, 1), "photo": (counts, 1)}, save_path=str(tmp_path / "f3.png"))
    red, green, _ = figure.axes[0].lines
    assert red.get_ydata()[10] == 1.0 and np.allclose(green.get_ydata(), 1 / 256)
    for name in ("f2.png", "f3.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"


def test_evaluation_uses_the_held_out_paintings(demo_data_dir, tmp_path):
    from monet_keras.evaluate import features
    from monet_keras.experiments import notebook as nb
    from monet_keras.config import tiny
    from monet_keras.train.training import train

    config = tiny("Os", data_dir=str(demo_data_dir), out_dir=str(tmp_path / "run"), holdout_monet=2)
    train(config, log=lambda *_: None, verbose=0)
    held = open(tmp_path / "run" / "holdout_monet.txt").read().split()
    assert len(held) == 2
    # Independent decode of the held-out JPEGs: PIL, then x / 127.5 - 1.
    want = np.stack([np.asarray(Image.open(demo_data_dir / "monet_jpg" / f"{name}.jpg"), np.float32) / 127.5 - 1
                     for name in sorted(held)])
    got = nb.heldout_paintings(config)
    assert got.shape == want.shape
    # the same two images, in any order (data.decode_image uses the accurate DCT, as PIL does)
    for image in got:
        assert min(float(np.max(np.abs(image - w))) for w in want) <= 1e-6
    generated = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    scores = nb.evaluate_run(config, generated, extractor=features.standin_extractor())
    assert scores["n_real"] == 2 and scores["n_generated"] == 3
