"""package-kaggle: the library zip imports on its own, and the Kaggle metadata is what the CLI expects."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from monet_keras.submit import kaggle_package as kp
from monet_keras.cli import main
from monet_keras.errors import MonetKerasError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_package_folders(tmp_path, capsys):
    assert main(["package-kaggle", str(tmp_path / "up"), "--id", "jane/monet-keras"]) == 0
    dataset, kernel = tmp_path / "up" / "dataset", tmp_path / "up" / "kernel"
    assert sorted(os.listdir(dataset)) == ["dataset-metadata.json", "monet_keras_lib.zip"]
    meta = json.loads((dataset / "dataset-metadata.json").read_text())
    assert meta["id"] == "jane/monet-keras" and meta["title"] and meta["licenses"][0]["name"]

    expected = sorted(
        os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
        for package in ("monet_keras", "tfrecords_tools")
        for folder, _, names in os.walk(os.path.join(ROOT, package)) if "__pycache__" not in folder
        for name in names if name.endswith(".py"))
    with zipfile.ZipFile(dataset / "monet_keras_lib.zip") as archive:
        assert sorted(archive.namelist()) == expected

    kernel_meta = json.loads((kernel / "kernel-metadata.json").read_text())
    assert kernel_meta["id"] == "jane/monet-cyclegan"
    assert kernel_meta["dataset_sources"] == ["jane/monet-keras"]
    assert kernel_meta["competition_sources"] == ["gan-getting-started"]
    assert kernel_meta["kernel_type"] == "notebook" and kernel_meta["enable_internet"] is False
    assert (kernel / kernel_meta["code_file"]).read_bytes() == open(kp.NOTEBOOK, "rb").read()
    out = capsys.readouterr().out
    assert f"kaggle datasets create -p {dataset}" in out and f"kaggle kernels push -p {kernel}" in out


def test_library_imports_from_the_zip_alone(tmp_path):
    path = kp.write_library_zip(str(tmp_path / "lib.zip"))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import monet_keras.config, tfrecords_tools.schema; "
            "print(monet_keras.config.__file__); print(monet_keras.config.tiny().image_size)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run([sys.executable, "-c", code, path], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split()
    assert lines[0].startswith(os.path.join(path, "monet_keras")) and lines[1] == "32"


def test_bad_ids_and_non_empty_output(tmp_path):
    for bad in ("monet-keras", "jane/Monet_Keras", "jane/abc", "/monet-keras"):
        with pytest.raises(MonetKerasError, match="bad --id"):
            kp.build_package(str(tmp_path / "a"), bad)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    with pytest.raises(MonetKerasError, match="not empty"):
        kp.build_package(str(tmp_path / "b"), "jane/monet-keras")
    kp.build_package(str(tmp_path / "b"), "jane/monet-keras", force=True)
    assert (tmp_path / "b" / "dataset" / "monet_keras_lib.zip").exists()
