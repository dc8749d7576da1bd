"""Finding the data (every layout, the TFRecords-before-JPEGs rule, the data folder's origin) and
checking it once, with skip-corrupt marks that travel with the files."""

import logging
import os
import shutil
import sys
import types

import numpy as np
import pytest
from conftest import DEMO_COUNTS
from kaggle_fixtures import jpeg_bytes, write_kaggle_folder

from monet_keras.data import source
from monet_keras.data.source import DataFolder, DomainFiles, find_domain, find_images
from monet_keras.errors import MonetKerasError


def names(files):
    return [os.path.basename(p) for p in files.paths]


# --- one domain's files: every layout, one preference rule -------------------------------------

@pytest.fixture
def both_forms(tmp_path):
    """A Kaggle-layout root holding each domain as TFRecords and as JPEGs."""
    root = write_kaggle_folder(str(tmp_path / "root"), n_monet=2, n_photo=3, kind="tfrecord")
    return write_kaggle_folder(root, n_monet=2, n_photo=3, kind="jpeg")


def test_kaggle_root_prefers_tfrecords_to_jpegs(both_forms):
    files = find_domain(both_forms, "photo")
    assert files.kind == "tfrecord" and names(files) == ["photo00-3.tfrec"]
    assert files.where == os.path.join(both_forms, "photo_tfrec") and files.skip is None
    assert find_images(both_forms, "monet") == find_domain(both_forms, "monet")
    shutil.rmtree(os.path.join(both_forms, "photo_tfrec"))
    files = find_domain(both_forms, "photo")
    assert files.kind == "jpeg" and names(files) == ["photo0000.jpg", "photo0001.jpg", "photo0002.jpg"]


def test_a_tfrec_folder_with_no_tfrecords_falls_back_to_the_jpegs(both_forms):
    for name in os.listdir(os.path.join(both_forms, "monet_tfrec")):
        os.remove(os.path.join(both_forms, "monet_tfrec", name))
    assert find_domain(both_forms, "monet").kind == "jpeg"


def test_plain_folders_and_one_tfrec_file(tmp_path, both_forms):
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("b.JPG", "a.jpeg", "c.jpg"):
        (plain / name).write_bytes(jpeg_bytes(np.zeros((8, 8, 3))))
    (plain / "notes.txt").write_text("not an image")
    (plain / "sub.jpg").mkdir()  # a folder, whatever its name
    files = find_images(plain, "monet")
    assert (files.domain, files.kind, names(files)) == ("monet", "jpeg", ["a.jpeg", "b.JPG", "c.jpg"])
    # TFRecords and JPEGs in one plain folder: the same rule
    shard = os.path.join(both_forms, "photo_tfrec", "photo00-3.tfrec")
    shutil.copy(shard, plain)
    assert find_images(plain).kind == "tfrecord" and names(find_images(plain)) == ["photo00-3.tfrec"]
    one = find_images(shard)
    assert (one.kind, one.paths) == ("tfrecord", (shard,))
    assert find_images(one) is one  # DomainFiles pass through, checked or not


def test_where_nothing_is_found_the_error_says_why(tmp_path):
    with pytest.raises(MonetKerasError, match="data folder not found: .*nope"):
        find_domain(str(tmp_path / "nope"), "monet")
    with pytest.raises(MonetKerasError, match="not a Kaggle-layout data folder"):
        find_domain(str(tmp_path), "monet")
    (tmp_path / "monet_jpg").mkdir()
    with pytest.raises(MonetKerasError, match="no monet images in .*monet_tfrec/ has no .tfrec files"):
        find_domain(str(tmp_path), "monet")
    with pytest.raises(MonetKerasError, match="no such file or folder: .*missing"):
        find_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MonetKerasError, match="not a folder of images or a .tfrec file: .*notes.txt"):
        find_images(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MonetKerasError, match=r"no .jpg or .tfrec files in .*empty: it is empty"):
        find_images(tmp_path / "empty")
    (tmp_path / "empty" / "readme.md").write_text("hello")
    with pytest.raises(MonetKerasError, match=r"it holds 1 other entries, e.g. readme.md"):
        find_images(tmp_path / "empty")


# --- the data folder: given, Kaggle's (local or GCS), demo ------------------------------------------

@pytest.fixture
def no_kaggle(monkeypatch, tmp_path):
    monkeypatch.setattr(source, "KAGGLE_INPUT", str(tmp_path / "no-kaggle-here"))


def test_given_data_dir_wins(demo_data_dir, monkeypatch):
    monkeypatch.setattr(source, "KAGGLE_INPUT", str(demo_data_dir))
    found = source.find_data(str(demo_data_dir), demo_dir="unused")
    assert found == source.DataSource(str(demo_data_dir), "given")


def test_given_data_dir_must_exist(tmp_path, no_kaggle):
    with pytest.raises(MonetKerasError, match="data folder not found: .*missing"):
        source.find_data(str(tmp_path / "missing"), demo_dir=str(tmp_path / "demo"))


def test_kaggle_input_folder_is_found(demo_data_dir, monkeypatch, tmp_path):
    kaggle = tmp_path / "kaggle" / "input" / "gan-getting-started"
    shutil.copytree(demo_data_dir, kaggle)
    monkeypatch.setattr(source, "KAGGLE_INPUT", str(kaggle))
    assert source.find_data("", demo_dir=str(tmp_path / "demo")) == source.DataSource(str(kaggle), "kaggle")
    assert not (tmp_path / "demo").exists()


def test_a_tpu_strategy_reads_the_kaggle_data_from_gcs(demo_data_dir, monkeypatch):
    import tensorflow as tf

    asked = []

    class KaggleDatasets:
        def get_gcs_path(self, name):
            asked.append(name)
            return "gs://kds-bucket"

    monkeypatch.setitem(sys.modules, "kaggle_datasets", types.SimpleNamespace(KaggleDatasets=KaggleDatasets))
    monkeypatch.setattr(source, "KAGGLE_INPUT", str(demo_data_dir))
    tpu = tf.distribute.TPUStrategy.__new__(tf.distribute.TPUStrategy)  # an instance without a TPU
    assert source.find_data("", strategy=tpu) == source.DataSource("gs://kds-bucket", "kaggle-gcs")
    assert asked == ["gan-getting-started"]
    assert source.find_data("") == source.DataSource(str(demo_data_dir), "kaggle")  # not on a TPU


def test_demo_data_is_made_once_when_nothing_else_is_there(tmp_path, no_kaggle, monkeypatch):
    demo = str(tmp_path / "demo")
    found = source.find_data("", demo_dir=demo, demo_monet=3, demo_photos=4, demo_size=32)
    assert found == source.DataSource(demo, "demo")
    assert len(os.listdir(os.path.join(demo, "monet_jpg"))) == 3
    assert len(os.listdir(os.path.join(demo, "photo_jpg"))) == 4
    import tfrecords_tools.demo

    def must_not_run(*args, **kwargs):
        raise AssertionError("demo data rebuilt")

    monkeypatch.setattr(tfrecords_tools.demo, "make_demo", must_not_run)
    assert source.find_data("", demo_dir=demo) == found


def test_without_a_demo_folder_finding_nothing_is_an_error(no_kaggle):
    with pytest.raises(MonetKerasError, match="no data folder given and no Kaggle data at .*no-kaggle-here"):
        source.find_data("")


# --- checking once; skip marks travel with the files ---------------------------------------------

def test_check_names_the_first_bad_record_and_how_to_skip_it(corrupt_data_dir):
    data = DataFolder.find(corrupt_data_dir)
    with pytest.raises(MonetKerasError) as info:
        data.photo.checked()
    message = str(info.value)
    assert message.startswith(f"bad photo data: {corrupt_data_dir}/photo_tfrec/photo10-1.tfrec: record 0: ")
    assert "--skip-corrupt" in message and "tfrecords_tools inspect" in message and "\n" not in message
    jpegs = find_images(corrupt_data_dir / "photo_jpg")
    with pytest.raises(MonetKerasError, match=f"bad photo data: {corrupt_data_dir}/photo_jpg/broken.jpg: "):
        jpegs.checked()


def test_skip_corrupt_marks_the_bad_records_once(corrupt_data_dir, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="monet_keras"):
        data = DataFolder.find(corrupt_data_dir).checked(skip_corrupt=True)
    assert data.photo.skip == {f"{corrupt_data_dir}/photo_tfrec/photo10-1.tfrec#0"}
    assert data.monet.skip == {f"{corrupt_data_dir}/monet_tfrec/monet05-1.tfrec#0"}
    assert [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records] == [
        ("WARNING", "skipping 1 unreadable or odd monet record(s)"),
        ("WARNING", "skipping 1 unreadable or odd photo record(s)")]
    jpegs = find_images(corrupt_data_dir / "photo_jpg").checked(skip_corrupt=True)
    assert jpegs.skip == {f"{corrupt_data_dir}/photo_jpg/broken.jpg"}

    def no_second_scan(*args, **kwargs):
        raise AssertionError("checked files scanned again")

    monkeypatch.setattr(source, "scan", no_second_scan)
    assert data.checked(skip_corrupt=True) == data and data.checked(skip_corrupt=False) == data
    clean = DomainFiles("photo", "tfrecord", ("gs://bucket/photo_tfrec/photo00-1.tfrec",))
    assert clean.checked().skip == frozenset()  # data on GCS is not scanned


def test_good_data_checks_clean(demo_data_dir, caplog):
    with caplog.at_level(logging.INFO, logger="monet_keras"):
        data = DataFolder.find(demo_data_dir).checked()
    assert caplog.messages == []
    assert data.monet.skip == data.photo.skip == frozenset()
    assert (len(data.monet.paths), len(data.photo.paths)) == (5, DEMO_COUNTS["photo"])  # shards
