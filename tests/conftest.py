"""Shared fixtures: a tiny procedural data set in the Kaggle layout, the fake Kaggle API and a HOME
that points the kaggle CLI at it, and the kit's loggers restored after each test."""

import logging
import os

import pytest
from fake_kaggle import FakeKaggle

from tfrecords_tools.console import KIT_LOGGERS

DEMO_COUNTS = {"monet": 6, "photo": 10}
DEMO_SIZE = 32


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory):
    """A read-only Kaggle-layout folder (``monet_tfrec/``, ``photo_tfrec/``, ``monet_jpg/``,
    ``photo_jpg/``) with ``DEMO_COUNTS`` images of ``DEMO_SIZE`` px, shards 5 Monet and 10
    photo files, seed 0. Shared by the session: copy it before changing anything."""
    from tfrecords_tools.demo import make_demo

    path = tmp_path_factory.mktemp("demo") / "data"
    make_demo(path, n_monet=DEMO_COUNTS["monet"], n_photos=DEMO_COUNTS["photo"], size=DEMO_SIZE, seed=0)
    return path


BROKEN_JPEG = b"\xff\xd8\xff\xe0 not really a JPEG"


@pytest.fixture(scope="session")
def corrupt_data_dir(demo_data_dir, tmp_path_factory):
    """:func:`demo_data_dir` plus one unreadable image per domain and form, each named ``broken``:
    the record of ``{domain}_tfrec/{domain}NN-1.tfrec`` (the last shard) and ``{domain}_jpg/broken.jpg``.
    Read-only like demo_data_dir."""
    import shutil

    import tensorflow as tf

    from tfrecords_tools import schema

    path = tmp_path_factory.mktemp("corrupt") / "data"
    shutil.copytree(demo_data_dir, path)
    for domain, shards in (("monet", 5), ("photo", 10)):
        shard = path / schema.tfrec_dir(domain) / schema.shard_name(domain, shards, 1)
        with tf.io.TFRecordWriter(str(shard)) as w:
            w.write(schema.encode_example("broken", BROKEN_JPEG, domain))
        (path / schema.jpg_dir(domain) / "broken.jpg").write_bytes(BROKEN_JPEG)
    return path


@pytest.fixture(autouse=True)
def kit_loggers_as_found():
    """Tests that run a command call ``log_to_console()``, which sets the kit's loggers up for the
    whole process; put them back after each test, so no test sees another's logging set-up."""
    loggers = [logging.getLogger(name) for name in KIT_LOGGERS]
    saved = [(logger.level, list(logger.handlers)) for logger in loggers]
    yield
    for logger, (level, handlers) in zip(loggers, saved, strict=True):
        logger.setLevel(level)
        logger.handlers[:] = handlers


@pytest.fixture
def fake():
    with FakeKaggle() as server:
        yield server


@pytest.fixture
def home(fake, tmp_path, monkeypatch):
    """A clean HOME whose environment routes the kaggle CLI to ``fake``; no credentials yet
    (tests/test_kaggle_submit.py, tests/test_kaggle_batch.py)."""
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    env = fake.env(home, os.environ, KAGGLE_CONFIG_DIR=home / ".kaggle")
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return home
