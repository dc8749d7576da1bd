"""Kaggle-layout readers and the Os / Us epoch semantics, counted image by image."""

import collections

import numpy as np
import pytest

from kaggle_fixtures import coded_image, decoded_index, jpeg_bytes, write_kaggle_folder
from monet_keras import data
from monet_keras.config import tiny
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
    return write_kaggle_folder(str(tmp_path_factory.mktemp("kaggle")), n_monet=6, n_photo=20, size=32, shards=3)


@pytest.mark.parametrize("kind", ["tfrecord", "jpeg"])
def test_reads_both_layouts(tmp_path, kind):
    root = write_kaggle_folder(str(tmp_path), n_monet=3, n_photo=4, size=32, kind=kind)
    files = data.find_domain(root, "photo")
    assert files.kind == kind
    pairs = list(data.load_images(files, image_size=32, with_names=True).as_numpy_iterator())
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
    image = next(data.load_images(data.find_domain(root, "monet"), image_size=32).as_numpy_iterator())
    assert image.shape == (32, 32, 3)


def test_over_sampling_epoch(folder):
    monet, photo = data.find_domain(folder, "monet"), data.find_domain(folder, "photo")
    dataset, steps = data.paired_dataset(monet, photo, 6, 20, "over", batch_size=3, image_size=32, seed=1)
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
    monet, photo = data.find_domain(folder, "monet"), data.find_domain(folder, "photo")
    dataset, steps = data.paired_dataset(monet, photo, 6, 20, "under", batch_size=2, image_size=32, seed=1)
    assert steps == 3
    subsets = []
    for _ in range(3):
        m, p = epoch_indices(dataset)
        assert sorted(m) == list(range(6)), "every Monet exactly once per epoch"
        assert len(set(p)) == 6, "a subset of distinct photos of the same size"
        subsets.append(frozenset(p))
    assert len(set(subsets)) > 1, "a fresh random subset of photos every epoch"


def test_seeded_order_is_reproducible(folder):
    monet, photo = data.find_domain(folder, "monet"), data.find_domain(folder, "photo")
    a, _ = data.paired_dataset(monet, photo, 6, 20, "over", 2, 32, seed=5)
    b, _ = data.paired_dataset(monet, photo, 6, 20, "over", 2, 32, seed=5)
    assert epoch_indices(a) == epoch_indices(b)


def test_holdout_is_kept_out(folder):
    config = tiny("Us", data_dir=folder, holdout_monet=2, batch_size=1, steps_per_epoch=None, seed=3)
    train = data.training_data(config)
    assert train.n_monet == 4 and len(train.holdout_names) == 2 and train.steps_per_epoch == 4
    held = {int(n[-4:]) for n in train.holdout_names}
    m, _ = epoch_indices(train.dataset)
    assert sorted(m) == sorted(set(range(6)) - held)
    # deterministic for a seed
    assert data.split_holdout([f"m{i}" for i in range(10)], 3, 7) == data.split_holdout(
        [f"m{i}" for i in reversed(range(10))], 3, 7)


def test_fixed_steps_per_epoch_repeats(folder):
    config = tiny("Os", data_dir=folder, batch_size=4, steps_per_epoch=7)
    train = data.training_data(config)
    assert train.steps_per_epoch == 7
    assert len(list(train.dataset.take(7))) == 7  # more than one pass of 20 // 4 = 5 batches


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(MonetKerasError, match="data folder not found"):
        data.find_domain(str(tmp_path / "nope"), "monet")
    with pytest.raises(MonetKerasError, match="not a Kaggle-layout"):
        data.find_domain(str(tmp_path), "monet")
    (tmp_path / "monet_jpg").mkdir()
    with pytest.raises(MonetKerasError, match="no monet images"):
        data.find_domain(str(tmp_path), "monet")


def test_batch_larger_than_epoch(folder):
    monet, photo = data.find_domain(folder, "monet"), data.find_domain(folder, "photo")
    with pytest.raises(MonetKerasError, match="batch_size"):
        data.paired_dataset(monet, photo, 6, 20, "under", batch_size=7, image_size=32, seed=0)


def test_find_images_accepts_plain_folders(tmp_path):
    (tmp_path / "x.jpg").write_bytes(jpeg_bytes(np.zeros((8, 8, 3))))
    assert data.find_images(str(tmp_path)).kind == "jpeg"
    with pytest.raises(MonetKerasError, match="image folder not found"):
        data.find_images(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MonetKerasError, match="no .jpg or .tfrec"):
        data.find_images(str(tmp_path / "empty"))


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
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])) for k, v in feats.items()})).SerializeToString()


@pytest.mark.parametrize("record, what", [
    (_example("bad0", b"\xff\xd8\xff garbage"), "record 0"),
    (_example("bad0", jpeg_bytes(np.zeros((32, 32, 3))), drop="image"), "image"),
    (b"not an example at all", "record 0"),
])
def test_bad_record_stops_before_training(tmp_path, record, what):
    root = write_kaggle_folder(str(tmp_path), n_monet=4, n_photo=6, size=32)
    bad_file = _append_records(root, "photo", [record])
    config = tiny("Os", data_dir=root, steps_per_epoch=None)
    with pytest.raises(MonetKerasError) as info:
        data.training_data(config, log=lambda *_: None)
    message = str(info.value)
    assert bad_file in message and what in message and "\n" not in message


def test_wrong_size_image_stops(tmp_path):
    root = write_kaggle_folder(str(tmp_path), n_monet=4, n_photo=6, size=32)
    bad_file = _append_records(root, "photo", [_example("odd", jpeg_bytes(np.zeros((48, 48, 3))))])
    with pytest.raises(MonetKerasError, match="48"):
        data.training_data(tiny("Os", data_dir=root, steps_per_epoch=None), log=lambda *_: None)
    assert bad_file


def test_skip_corrupt_counts_and_skips(tmp_path):
    root = write_kaggle_folder(str(tmp_path), n_monet=4, n_photo=6, size=32)
    good = jpeg_bytes(coded_image("photo", 7, 32))
    _append_records(root, "photo", [_example("bad0", b"garbage"), _example("photo0007", good),
                                    _example("bad1", jpeg_bytes(np.zeros((32, 32)), quality=90))])
    messages = []
    config = tiny("Os", data_dir=root, steps_per_epoch=None, skip_corrupt=True, batch_size=1)
    train = data.training_data(config, log=messages.append)
    assert train.n_photo == 7 and "skipping 2" in messages[0]
    _, photos = epoch_indices(train.dataset)
    assert sorted(photos) == list(range(8))[:6] + [7]
