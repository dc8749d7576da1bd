"""Kaggle's extractor (the 2015 Inception graph, read from a .pb GraphDef), on a tiny stand-in graph.

The stand-in has the real graph's tensor names and its head (DecodeJpeg -> Cast -> ExpandDims ->
ResizeBilinear -> (x - 128) / 128), then a fixed 1x1 convolution to 2048 channels, tanh and an
average pool named pool_3; its features are recomputed here with numpy.
"""

import json

import numpy as np
import pytest

from monet_keras.errors import MonetKerasError
from monet_keras.evaluate import features

SIDE = 8  # the stand-in's resize target (the real graph's is 299)


def standin_kernel():
    return np.random.default_rng(3).standard_normal((3, features.INCEPTION_DIM)).astype(np.float32) * 0.5


def write_standin_graph(path, prefix=""):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), graph.name_scope(prefix):  # "" is the top level; "a/" is absolute
        contents = tf.compat.v1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        decoded = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        expanded = tf.expand_dims(tf.cast(decoded, tf.float32, name="Cast"), 0, name="ExpandDims")
        resized = tf.compat.v1.image.resize_bilinear(expanded, [SIDE, SIDE], name="ResizeBilinear")
        normed = (resized - 128.0) / 128.0
        kernel = tf.constant(standin_kernel()[None, None])
        maps = tf.tanh(tf.nn.conv2d(normed, kernel, 1, "VALID"))
        tf.nn.avg_pool2d(maps, SIDE, SIDE, "VALID", name="pool_3")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def expected_features(pixels):
    """uint8 (n, s, s, 3) -> the stand-in's pool_3 features in numpy. The legacy ResizeBilinear
    (no align_corners, no half-pixel centers) samples source pixel i * s / SIDE, an integer here."""
    step = pixels.shape[1] // SIDE
    sampled = pixels[:, ::step, ::step].astype(np.float64)
    return np.tanh(((sampled - 128) / 128) @ standin_kernel().astype(np.float64)).mean(axis=(1, 2))


@pytest.fixture(scope="module")
def standin_pb(tmp_path_factory):
    return write_standin_graph(tmp_path_factory.mktemp("graph") / features.GRAPH_FILE)


@pytest.mark.parametrize("prefix", ["", "FID_Inception_Net/"])
def test_graph_features_match_numpy_for_any_batch_split(tmp_path, prefix):
    path = write_standin_graph(tmp_path / "graph.pb", prefix)
    pixels = np.random.default_rng(0).integers(0, 256, (5, 256, 256, 3), dtype=np.uint8)
    extractor = features.graph_extractor(path)
    assert extractor.image_size == features.KAGGLE_IMAGE_SIZE  # 256 px images reach the graph untouched
    got = features.extract_features(pixels, extractor, batch_size=3, verbose=0)  # batches of 3 and 2
    assert got.shape == (5, features.INCEPTION_DIM)
    np.testing.assert_allclose(got, expected_features(pixels), rtol=1e-4, atol=1e-5)


def test_graph_extractor_is_labelled_as_kaggles(standin_pb):
    extractor = features.graph_extractor(standin_pb)
    assert extractor.kaggle_extractor and extractor.comparable_to_kaggle
    assert "Kaggle's extractor" in extractor.label and features.NOT_COMPARABLE not in extractor.label
    described = extractor.describe()
    assert described["kaggle_extractor"] is True and "ResizeBilinear to 299" in described["resize"]
    assert described["weights"].endswith(f"({features.GRAPH_FILE})")


def test_a_pb_path_selects_the_graph_from_argument_or_environment(standin_pb, monkeypatch):
    assert features.extractor_for_weights(str(standin_pb)).kaggle_extractor
    monkeypatch.setenv(features.WEIGHTS_ENV, str(standin_pb))
    from monet_keras.experiments.notebook import pick_extractor

    assert pick_extractor().name == features.GRAPH_NAME


def test_bad_graph_files_give_one_line(tmp_path):
    import tensorflow as tf

    with pytest.raises(MonetKerasError, match=r"cannot read Inception graph .*missing\.pb"):
        features.graph_extractor(tmp_path / "missing.pb")
    text = tmp_path / "text.pb"
    text.write_text("not a graph")
    with pytest.raises(MonetKerasError, match=r"text\.pb: not a TensorFlow GraphDef"):
        features.graph_extractor(text)
    other = tmp_path / "other.pb"
    graph = tf.Graph()
    with graph.as_default():
        tf.constant(1.0, name="something_else")
    other.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(MonetKerasError, match=r"other\.pb is not Kaggle's Inception graph: .*ExpandDims"):
        features.graph_extractor(other)


def test_evaluate_cli_with_the_graph_labels_scores_as_kaggles(standin_pb, tmp_path, capsys):
    from PIL import Image

    from monet_keras.cli import main

    rng = np.random.default_rng(1)
    for folder, count in (("gen", 3), ("real", 4)):
        (tmp_path / folder).mkdir()
        for i in range(count):
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"{i}.jpg")
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--generated", str(tmp_path / "gen"), "--real", str(tmp_path / "real"),
                 "--weights", str(standin_pb), "--out", str(out), "--quiet"]) == 0
    scores = json.loads(out.read_text())
    assert scores["extractor"] == features.GRAPH_NAME and scores["kaggle_extractor"] is True
    assert scores["image_size"] == features.KAGGLE_IMAGE_SIZE
    assert "Kaggle's extractor" in scores["note"]
    assert "Kaggle's extractor" in capsys.readouterr().out
