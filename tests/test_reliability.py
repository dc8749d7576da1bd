"""Fault injection: a killed run resumes; a NaN stops training at once; random bytes never crash
the reader."""

import errno
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kaggle_fixtures import write_kaggle_folder

from monet_keras.config import tiny
from monet_keras.data.pipeline import load_images
from monet_keras.data.source import find_domain
from monet_keras.errors import MonetKerasError
from monet_keras.train import checkpoints
from monet_keras.train.run_folder import RunFolder
from monet_keras.train.training import build_gan, train
from tfrecords_tools.atomic import atomic_path

ROOT = os.path.dirname(os.path.dirname(__file__))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_sigkill_mid_epoch_then_resume(tmp_path, backend):
    folder = write_kaggle_folder(str(tmp_path / "data"), n_monet=4, n_photo=8, size=32)
    out = tmp_path / "run"
    steps, epochs = 150, 3
    command = [sys.executable, "-m", "monet_keras", "train", "--data", folder, "--out", str(out),
               "--image-size", "32", "--base-filters", "8", "--epochs", str(epochs),
               "--steps-per-epoch", str(steps), "--backend", backend]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first = out / "checkpoints" / "epoch-0001.npz"
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert first.exists(), "no checkpoint after the first epoch"
    time.sleep(1.0)  # well into epoch 2
    assert process.poll() is None, "the run ended before it could be killed; raise steps"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = [r["epoch"] for r in RunFolder(out).read_history()]
    assert done_before and done_before[-1] < epochs

    resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from epoch {done_before[-1]} of {epochs}" in resumed.stdout
    assert [r["epoch"] for r in RunFolder(out).read_history()] == list(range(1, epochs + 1))
    gan = build_gan(tiny("Os", data_dir=folder))
    assert checkpoints.restore_latest(gan, out / "checkpoints") == epochs
    # The optimizer's step count continued rather than restarting.
    assert int(keras.ops.convert_to_numpy(gan.optimizer.iterations)) == epochs * steps
    assert keras.saving.load_model(out / "monet_generator.keras").output_shape == (None, 32, 32, 3)


def test_nan_loss_stops_at_once_and_keeps_last_good_state(tmp_path):
    folder = write_kaggle_folder(str(tmp_path / "data"), n_monet=4, n_photo=4, size=32)
    config = tiny("Os", data_dir=folder, out_dir=str(tmp_path / "run"), epochs=1, steps_per_epoch=2)
    train(config, verbose=0)
    checkpoint = os.path.join(config.out_dir, "checkpoints", "epoch-0001.npz")
    stamp = os.path.getmtime(checkpoint)
    # An absurd learning rate blows the weights up to inf/NaN within a few steps.
    with pytest.raises(MonetKerasError, match=r"became (nan|inf|-inf) at step \d+") as info:
        train(config.replace(epochs=3, learning_rate=1e30, steps_per_epoch=20), verbose=0)
    assert "_loss" in str(info.value)
    assert [r["epoch"] for r in RunFolder(config.out_dir).read_history()] == [1]
    kept = checkpoints.list_checkpoints(os.path.join(config.out_dir, "checkpoints"))
    assert [os.path.basename(p) for p in kept] == ["epoch-0001.npz"]
    assert os.path.getmtime(checkpoint) == stamp


def test_full_disk_while_checkpointing_stops_with_one_line_and_keeps_the_last_one(tmp_path, monkeypatch):
    folder = write_kaggle_folder(str(tmp_path / "data"), n_monet=4, n_photo=4, size=32)
    config = tiny("Os", data_dir=folder, out_dir=str(tmp_path / "run"), epochs=1, steps_per_epoch=2)
    train(config, verbose=0)
    directory = os.path.join(config.out_dir, "checkpoints")
    last = tmp_path / "run" / "checkpoints" / "epoch-0001.npz"
    before = last.read_bytes()

    def disk_fills_up(file, **arrays):
        file.write(b"PK" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(np, "savez", disk_fills_up)
    with pytest.raises(MonetKerasError) as info:
        train(config.replace(epochs=2), verbose=0)
    assert str(info.value).startswith(f"cannot write {os.path.join(directory, 'epoch-0002.npz')}: ")
    assert "space" in str(info.value) and "\n" not in str(info.value)
    assert sorted(os.listdir(directory)) == ["epoch-0001.npz"]  # no partial file left
    assert last.read_bytes() == before


def test_atomic_path_passes_other_os_errors_on(tmp_path):
    target = tmp_path / "kept.txt"
    target.write_text("old")
    with pytest.raises(NotADirectoryError), atomic_path(target) as tmp:
        open(os.path.join(tmp, "not-a-folder", "x"), "w").close()
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["kept.txt"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blobs=st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=3))
def test_random_record_bytes_only_raise_our_error(tmp_path, blobs):
    import tensorflow as tf

    root = write_kaggle_folder(str(tmp_path / f"d{abs(hash(tuple(blobs)))}"), n_monet=2, n_photo=2, size=32)
    with tf.io.TFRecordWriter(os.path.join(root, "photo_tfrec", "photo09-1.tfrec")) as writer:
        for blob in blobs:
            writer.write(blob)
    files = find_domain(root, "photo")
    with pytest.raises(MonetKerasError) as info:
        files.checked()
    assert "photo09-1.tfrec" in str(info.value) and "\n" not in str(info.value)
    # skip mode reads on without error and keeps only the good images
    checked = files.checked(skip_corrupt=True)
    images = list(load_images(checked, 32).as_numpy_iterator())
    assert len(images) == 2 and all(np.isfinite(i).all() for i in images)


def test_train_cli_stops_on_a_bad_record_or_skips_it(tmp_path):
    import tensorflow as tf

    from tfrecords_tools import schema

    folder = write_kaggle_folder(str(tmp_path / "data"), n_monet=4, n_photo=4, size=32)
    bad = os.path.join(folder, "photo_tfrec", "photo09-1.tfrec")
    with tf.io.TFRecordWriter(bad) as writer:
        writer.write(schema.encode_example("broken", b"\xff\xd8\xff not really a jpeg", "photo"))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "monet_keras", "train", "--data", folder, "--out", str(tmp_path / "run"),
               "--image-size", "32", "--base-filters", "8", "--epochs", "1", "--steps-per-epoch", "1"]
    stopped = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 2
    assert f"{bad}: record 0" in stopped.stderr and "Traceback" not in stopped.stderr
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
    skipped = subprocess.run(command + ["--skip-corrupt"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert "skipping 1 unreadable or odd photo record(s)" in skipped.stdout
