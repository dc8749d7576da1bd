"""package-kaggle: the wheel installs offline with pip and imports on its own, and the Kaggle
metadata is what the CLI expects."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

import monet_keras
from monet_keras.cli import main
from monet_keras.errors import MonetKerasError
from monet_keras.experiments import notebook_cells
from monet_keras.submit import kaggle_package as kp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_package_folders(tmp_path, capsys):
    assert main(["package-kaggle", str(tmp_path / "up"), "--id", "jane/monet-keras"]) == 0
    dataset, kernel = tmp_path / "up" / "dataset", tmp_path / "up" / "kernel"
    assert sorted(os.listdir(dataset)) == ["dataset-metadata.json", kp.wheel_name()]
    meta = json.loads((dataset / "dataset-metadata.json").read_text())
    assert meta["id"] == "jane/monet-keras" and meta["title"] and meta["licenses"][0]["name"]

    expected = sorted(
        os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
        for package in ("monet_keras", "tfrecords_tools")
        for folder, _, names in os.walk(os.path.join(ROOT, package)) if "__pycache__" not in folder
        for name in names if name.endswith(".py"))
    with zipfile.ZipFile(dataset / kp.wheel_name()) as archive:
        names = archive.namelist()
    info = f"monet_keras-{monet_keras.__version__}.dist-info/"
    assert sorted(n for n in names if not n.startswith(info)) == expected
    assert sorted(n[len(info):] for n in names if n.startswith(info)) == ["METADATA", "RECORD", "WHEEL",
                                                                          "entry_points.txt"]

    kernel_meta = json.loads((kernel / "kernel-metadata.json").read_text())
    assert kernel_meta["id"] == "jane/monet-cyclegan"
    assert kernel_meta["dataset_sources"] == ["jane/monet-keras"]
    assert kernel_meta["competition_sources"] == ["gan-getting-started"]
    assert kernel_meta["kernel_type"] == "notebook" and kernel_meta["enable_internet"] is False
    assert (kernel / kernel_meta["code_file"]).read_text(encoding="utf-8") == notebook_cells.build()
    out = capsys.readouterr().out
    assert f"kaggle datasets create -p {dataset}" in out and f"kaggle kernels push -p {kernel}" in out


@pytest.mark.slow
def test_wheel_installs_offline_and_runs_on_its_own(tmp_path):
    """As the notebook installs it on Kaggle: pip, no index, no dependencies; then the installed
    copy (not this checkout) imports, reports its version and runs a command."""
    wheel = kp.write_wheel(str(tmp_path))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--target", str(target), wheel], check=True, timeout=300)
    code = ("import importlib.metadata, monet_keras, tfrecords_tools.schema; print(monet_keras.__file__); "
            "print(importlib.metadata.version('monet-keras'))")
    env = dict(os.environ, PYTHONPATH=str(target), TF_CPP_MIN_LOG_LEVEL="3")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    path, version = done.stdout.split()
    assert path == str(target / "monet_keras" / "__init__.py") and version == monet_keras.__version__
    demo = subprocess.run([sys.executable, "-m", "tfrecords_tools", "demo", str(cwd / "data"), "--monet", "2",
                           "--photos", "2", "--size", "32"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert len(os.listdir(cwd / "data" / "photo_jpg")) == 2
    assert len(os.listdir(cwd / "data" / "monet_jpg")) == 2


def test_bad_ids_and_non_empty_output(tmp_path):
    for bad in ("monet-keras", "jane/Monet_Keras", "jane/abc", "/monet-keras"):
        with pytest.raises(MonetKerasError, match="bad --id"):
            kp.build_package(str(tmp_path / "a"), bad)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    with pytest.raises(MonetKerasError, match="not empty"):
        kp.build_package(str(tmp_path / "b"), "jane/monet-keras")
    kp.build_package(str(tmp_path / "b"), "jane/monet-keras", force=True)
    assert (tmp_path / "b" / "dataset" / kp.wheel_name()).exists()
