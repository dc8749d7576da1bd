"""Readers of the data pipeline and the Os / Us epoch semantics, counted image by image; bad records
stop training or are skipped. Finding and checking the data: tests/test_source.py."""

import collections
import logging
import os

import numpy as np
import pytest
from kaggle_fixtures import coded_image, decoded_index, jpeg_bytes, write_kaggle_folder
from PIL import Image

from monet_keras.config import tiny
from monet_keras.data import pipeline
from monet_keras.data.source import DataFolder, find_domain, find_images
from monet_keras.errors import MonetKerasError


def epoch_indices(dataset):
    """(monet indices, photo indices) of one pass over a paired dataset."""
    monet, photo = [], []
    for real_monet, real_photo in dataset:
        monet += [decoded_index(x) for x in np.asarray(real_monet)]
        photo += [decoded_index(x) for x in np.asarray(real_photo)]
    return monet, photo


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_kaggle_folder(str(tmp_path_factory.mktemp("kaggle")), n_monet=6, n_photo=20, size=32,
                               shards=3)


@pytest.mark.parametrize("kind", ["tfrecord", "jpeg"])
def test_reads_both_layouts(tmp_path, kind):
    root = write_kaggle_folder(str(tmp_path), n_monet=3, n_photo=4, size=32, kind=kind)
    files = find_domain(root, "photo")
    assert files.kind == kind
    pairs = list(pipeline.load_images(files, image_size=32, with_names=True).as_numpy_iterator())
    assert sorted(n.decode() for n, _ in pairs) == [f"photo{i:04d}" for i in range(4)]
    for name, image in pairs:
        assert image.dtype == np.float32 and image.shape == (32, 32, 3)
        assert -1.0 <= image.min() and image.max() <= 1.0
        index = int(name.decode()[-4:])
        # Independent decode: (pixel / 127.5) - 1 of the stored JPEG, within JPEG error.
        want = coded_image("photo", index, 32).astype(np.float32) / 127.5 - 1
        np.testing.assert_allclose(image, want, atol=0.04)


def test_resizes_to_configured_size(tmp_path):
    root = write_kaggle_folder(str(tmp_path), n_monet=2, n_photo=2, size=64)
    image = next(pipeline.load_images(find_domain(root, "monet"), image_size=32).as_numpy_iterator())
    assert image.shape == (32, 32, 3)


def test_over_sampling_epoch(folder):
    monet, photo = find_domain(folder, "monet"), find_domain(folder, "photo")
    dataset, steps = pipeline.paired_dataset(monet, photo, 6, 20, "over", batch_size=3, image_size=32, seed=1)
    assert steps == 20 // 3
    first_m, first_p = epoch_indices(dataset)
    second_m, second_p = epoch_indices(dataset)
    assert len(first_p) == steps * 3 == len(first_m)
    # every photo at most once (the remainder batch is dropped), all but the remainder shown
    assert len(set(first_p)) == len(first_p) == 18
    # Monet paintings repeat to pair with them: each 3 times, full passes before any repeats
    assert sorted(collections.Counter(first_m).values()) == [3] * 6
    assert sorted(first_m[:6]) == list(range(6))
    assert first_p != second_p, "photos are reshuffled every epoch"


def test_under_sampling_epoch(folder):
    monet, photo = find_domain(folder, "monet"), find_domain(folder, "photo")
    dataset, steps = pipeline.paired_dataset(monet, photo, 6, 20, "under", batch_size=2, image_size=32,
                                             seed=1)
    assert steps == 3
    subsets = []
    for _ in range(3):
        m, p = epoch_indices(dataset)
        assert sorted(m) == list(range(6)), "every Monet exactly once per epoch"
        assert len(set(p)) == 6, "a subset of distinct photos of the same size"
        subsets.append(frozenset(p))
    assert len(set(subsets)) > 1, "a fresh random subset of photos every epoch"


def test_seeded_order_is_reproducible(folder):
    monet, photo = find_domain(folder, "monet"), find_domain(folder, "photo")
    a, _ = pipeline.paired_dataset(monet, photo, 6, 20, "over", 2, 32, seed=5)
    b, _ = pipeline.paired_dataset(monet, photo, 6, 20, "over", 2, 32, seed=5)
    assert epoch_indices(a) == epoch_indices(b)


def test_holdout_is_kept_out(folder):
    config = tiny("Us", data_dir=folder, holdout_monet=2, batch_size=1, steps_per_epoch=None, seed=3)
    train = pipeline.training_data(config)
    assert train.n_monet == 4 and len(train.holdout_names) == 2 and train.steps_per_epoch == 4
    held = {int(n[-4:]) for n in train.holdout_names}
    m, _ = epoch_indices(train.dataset)
    assert sorted(m) == sorted(set(range(6)) - held)
    # deterministic for a seed
    assert pipeline.split_holdout([f"m{i}" for i in range(10)], 3, 7) == pipeline.split_holdout(
        [f"m{i}" for i in reversed(range(10))], 3, 7)


def test_fixed_steps_per_epoch_repeats(folder):
    config = tiny("Os", data_dir=folder, batch_size=4, steps_per_epoch=7)
    train = pipeline.training_data(config)
    assert train.steps_per_epoch == 7
    assert len(list(train.dataset.take(7))) == 7  # more than one pass of 20 // 4 = 5 batches


@pytest.mark.parametrize("kind", ["tfrecord", "jpeg"])
def test_readers_run_without_the_autotuning_thread(tmp_path, kind):
    # Deleting an iterator waits out the autotuner's sleep (up to a minute): every reader is off it.
    root = write_kaggle_folder(str(tmp_path), n_monet=3, n_photo=4, size=32, kind=kind)
    monet, photo = find_domain(root, "monet"), find_domain(root, "photo")
    paired, _ = pipeline.paired_dataset(monet, photo, 3, 4, "over", batch_size=2, image_size=32, seed=0)
    readers = [paired, pipeline.load_images(photo, 32, with_names=True).batch(2).prefetch(2)]
    assert [reader.options().autotune.enabled for reader in readers] == [False, False]
    assert len(list(paired)) == 2


def test_batch_larger_than_epoch(folder):
    monet, photo = find_domain(folder, "monet"), find_domain(folder, "photo")
    with pytest.raises(MonetKerasError, match="batch_size"):
        pipeline.paired_dataset(monet, photo, 6, 20, "under", batch_size=7, image_size=32, seed=0)


# --- bad data: stop before training, or skip with skip_corrupt --------------------------------

def _append_records(root, domain, records):
    import tensorflow as tf

    from tfrecords_tools import schema

    path = f"{root}/{domain}_tfrec/{schema.shard_name(domain, 9, len(records))}"
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    return path


def _example(name, image_bytes, target="photo", drop=None):
    import tensorflow as tf

    feats = {"image_name": name.encode(), "image": image_bytes, "target": target.encode()}
    feats.pop(drop, None)
    return tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
        for k, v in feats.items()})).SerializeToString()


@pytest.mark.parametrize("record, what", [
    (_example("bad0", b"\xff\xd8\xff garbage"), "record 0"),
    (_example("bad0", jpeg_bytes(np.zeros((32, 32, 3))), drop="image"), "image"),
    (b"not an example at all", "record 0"),
], ids=["corrupt JPEG", "no image feature", "not an Example"])  # proto bytes differ between processes
def test_bad_record_stops_before_training(tmp_path, record, what):
    root = write_kaggle_folder(str(tmp_path), n_monet=4, n_photo=6, size=32)
    bad_file = _append_records(root, "photo", [record])
    config = tiny("Os", data_dir=root, steps_per_epoch=None)
    with pytest.raises(MonetKerasError) as info:
        pipeline.training_data(config)
    message = str(info.value)
    assert bad_file in message and what in message and "\n" not in message


def test_wrong_size_image_stops(tmp_path):
    root = write_kaggle_folder(str(tmp_path), n_monet=4, n_photo=6, size=32)
    bad_file = _append_records(root, "photo", [_example("odd", jpeg_bytes(np.zeros((48, 48, 3))))])
    with pytest.raises(MonetKerasError, match="48"):
        pipeline.training_data(tiny("Os", data_dir=root, steps_per_epoch=None))
    assert bad_file


def test_skip_corrupt_counts_and_skips(tmp_path, caplog):
    root = write_kaggle_folder(str(tmp_path), n_monet=4, n_photo=6, size=32)
    good = jpeg_bytes(coded_image("photo", 7, 32))
    _append_records(root, "photo", [_example("bad0", b"garbage"), _example("photo0007", good),
                                    _example("bad1", jpeg_bytes(np.zeros((32, 32)), quality=90))])
    config = tiny("Os", data_dir=root, steps_per_epoch=None, skip_corrupt=True, batch_size=1)
    with caplog.at_level(logging.INFO, logger="monet_keras"):
        train = pipeline.training_data(config)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert train.n_photo == 7 and len(warnings) == 1 and "skipping 2" in warnings[0]
    _, photos = epoch_indices(train.dataset)
    assert sorted(photos) == list(range(8))[:6] + [7]


# --- every reader reads through the checked files -------------------------------------------------

@pytest.fixture(params=["tfrecord", "jpeg"])
def photo_files(request, corrupt_data_dir):
    """The photos of corrupt_data_dir (10 good, 1 broken) as TFRecords or as JPEG files, not checked."""
    folder = corrupt_data_dir / ("photo_tfrec" if request.param == "tfrecord" else "photo_jpg")
    return find_images(folder, "photo")


def good_photo_names(corrupt_data_dir):
    return sorted(os.path.splitext(n)[0] for n in os.listdir(corrupt_data_dir / "photo_jpg")
                  if n != "broken.jpg")


def test_readers_leave_out_what_the_check_marked(photo_files, corrupt_data_dir):
    checked = photo_files.checked(skip_corrupt=True)
    good = good_photo_names(corrupt_data_dir)
    assert sorted(pipeline.list_names(checked)) == good
    pairs = list(pipeline.iterate(checked, pipeline.load_images(checked, 32, with_names=True)))
    assert sorted(n.decode() for n, _ in pairs) == good
    # the same pixels as an independent PIL decode of the stored JPEGs
    for name, image in pairs[:3]:
        jpeg = corrupt_data_dir / "photo_jpg" / f"{name.decode()}.jpg"
        want = np.asarray(Image.open(jpeg), np.float32) / 127.5 - 1
        np.testing.assert_allclose(image, want, atol=1e-6)
    assert pipeline.first_images(checked, 32, 20).shape == (len(good), 32, 32, 3)
    encoded = list(pipeline.encoded_images(checked))
    assert sorted(name for _, name, _ in encoded) == good


def test_unchecked_files_name_the_bad_record_on_reading(photo_files, corrupt_data_dir):
    broken = "photo10-1.tfrec: record 0" if photo_files.kind == "tfrecord" else "broken.jpg"
    with pytest.raises(MonetKerasError, match=f"bad photo data: .*{broken}: .*--skip-corrupt") as info:
        list(pipeline.iterate(photo_files, pipeline.load_images(photo_files, 32)))
    assert "\n" not in str(info.value) and "function_node" not in str(info.value)
    with pytest.raises(MonetKerasError, match=broken):
        pipeline.first_images(photo_files, 32, 20)


def test_training_takes_checked_files_without_scanning_again(corrupt_data_dir, monkeypatch):
    from monet_keras.data import source

    data = DataFolder.find(corrupt_data_dir).checked(skip_corrupt=True)
    monkeypatch.setattr(source, "scan", lambda *a, **k: pytest.fail("scanned again"))
    config = tiny("Us", data_dir=str(corrupt_data_dir), skip_corrupt=True, batch_size=1, steps_per_epoch=None)
    train = pipeline.training_data(config, data)
    assert (train.n_monet, train.n_photo) == (6, 10) and train.photo is data.photo
