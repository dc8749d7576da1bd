"""Shared fixtures: a tiny procedural data set in the Kaggle layout."""

import pytest

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
