"""CUT: PatchNCE against numpy, patch sampling, the sides of the step, and a run end to end."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from kaggle_fixtures import write_kaggle_folder

from monet_keras.config import tiny
from monet_keras.errors import MonetKerasError
from monet_keras.model import cut, networks, patchnce
from monet_keras.train import checkpoints
from monet_keras.train.training import build_gan, train

TEMPERATURE = 0.07


def _numpy_head(weights, x):
    """Dense -> ReLU -> Dense, from the head's weights of one layer."""
    w1, b1, w2, b2 = weights
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


def _numpy_patch_nce(key_maps, query_maps, head_weights, indices):
    """The reference's PatchNCELoss per image, written out: for query i, logits [positive k_i,
    negatives k_j (j != i) of the same image] / T, cross-entropy with target 0."""
    per_layer = []
    for layer, (k_map, q_map, ids) in enumerate(zip(key_maps, query_maps, indices)):
        b, h, w, c = k_map.shape
        weights = head_weights[f"mlp{layer}_1"] + head_weights[f"mlp{layer}_2"]
        k = _numpy_head(weights, k_map.reshape(b, h * w, c)[:, ids])
        q = _numpy_head(weights, q_map.reshape(b, h * w, c)[:, ids])
        k /= np.linalg.norm(k, axis=-1, keepdims=True) + 1e-7
        q /= np.linalg.norm(q, axis=-1, keepdims=True) + 1e-7
        losses = np.zeros((b, len(ids)))
        for image in range(b):
            for i in range(len(ids)):
                positive = q[image, i] @ k[image, i]
                negatives = [q[image, i] @ k[image, j] for j in range(len(ids)) if j != i]
                logits = np.array([positive, *negatives]) / TEMPERATURE
                losses[image, i] = np.log(np.sum(np.exp(logits))) - logits[0]
        per_layer.append(losses.mean(axis=1))
    return np.mean(per_layer, axis=0)


def test_patch_nce_matches_numpy():
    rng = np.random.default_rng(0)
    shapes = [(2, 4, 4, 3), (2, 2, 2, 5)]
    key_maps = [rng.normal(size=s).astype(np.float32) for s in shapes]
    query_maps = [(k + 0.5 * rng.normal(size=k.shape)).astype(np.float32) for k in key_maps]
    indices = [np.array([5, 0, 15, 9, 2]), np.array([3, 1, 2])]
    head = patchnce.build_patch_head([3, 5], units=6, seed=1)
    weights = {}  # random weights and biases, per Dense layer
    for layer in [la for la in head.layers if isinstance(la, keras.layers.Dense)]:
        weights[layer.name] = [rng.normal(scale=0.5, size=w.shape).astype(np.float32)
                               for w in layer.get_weights()]
        layer.set_weights(weights[layer.name])
    tensors = [keras.ops.convert_to_tensor(i) for i in indices]
    got = patchnce.patch_nce_loss(key_maps, query_maps, head, tensors, TEMPERATURE)
    want = _numpy_patch_nce(key_maps, query_maps, weights, indices)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-4)
    # Swapping the queries' images changes the positives: the loss compares positions, not sets.
    swapped = [q[::-1] for q in query_maps]
    assert not np.allclose(_numpy_patch_nce(key_maps, swapped, weights, indices), want)


def test_patch_sampling():
    seed = keras.random.SeedGenerator(3)
    draws = [keras.ops.convert_to_numpy(patchnce.sample_patch_indices(64, 10, seed)) for _ in range(2)]
    for draw in draws:
        assert draw.shape == (10,) and len(set(draw.tolist())) == 10
        assert draw.min() >= 0 and draw.max() < 64
    assert not np.array_equal(*draws)  # a new draw each step
    # A map with fewer positions than patches gives every position once.
    small = keras.ops.convert_to_numpy(patchnce.sample_patch_indices(4, 256, seed))
    assert sorted(small.tolist()) == [0, 1, 2, 3]
    # One draw per layer, sized by that layer's map.
    maps = [np.zeros((1, 8, 8, 2), np.float32), np.zeros((1, 2, 2, 2), np.float32)]
    sizes = [int(keras.ops.shape(i)[0]) for i in patchnce.draw_patch_indices(maps, 16, seed)]
    assert sizes == [16, 4]
    # Gathering takes row-major positions, the same ones from every image.
    features = np.arange(2 * 3 * 3 * 1, dtype=np.float32).reshape(2, 3, 3, 1)
    got = keras.ops.convert_to_numpy(patchnce.gather_patches(features, keras.ops.convert_to_tensor([4, 2])))
    np.testing.assert_array_equal(got[..., 0], [[4, 2], [13, 11]])


def test_unknown_nce_layer_is_one_line_error():
    generator = networks.build_generator(32, 4)
    with pytest.raises(MonetKerasError, match="nce_layers='down1_lrelu,nope'.*'nope'"):
        patchnce.feature_model(generator, ("down1_lrelu", "nope"))
    with pytest.raises(MonetKerasError, match="nce_layers"):
        tiny("Os", model="cut", nce_layers="down1_lrelu,,down2_lrelu")
    with pytest.raises(MonetKerasError, match="model"):
        tiny("Os", model="pix2pix")


def test_default_layers_exist_in_both_generators():
    for generator in ("unet", "resnet"):
        config = tiny("Os", model="cut", generator=generator, base_filters=4)
        features = patchnce.feature_model(networks.build_generator_from_config(config, "g"),
                                          cut.nce_layer_names(config))
        assert len(features.outputs) == len(cut.DEFAULT_NCE_LAYERS[generator])
    named = config.replace(nce_layers=" down1_conv, res2_add")
    assert cut.nce_layer_names(named) == ("down1_conv", "res2_add")


def _weights(network):
    return [keras.ops.convert_to_numpy(v).copy() for v in network.trainable_variables]


def _one_step(gan, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    batch = tuple(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32) for _ in range(2))
    gan.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0, shuffle=False)


@pytest.mark.parametrize("lambda_nce, nce_identity", [(1.0, False), (0.0, True)])
def test_nce_gradient_reaches_generator_and_head(lambda_nce, nce_identity):
    gan = build_gan(tiny("Os", model="cut", base_filters=4, lambda_nce=lambda_nce, nce_identity=nce_identity,
                         precision="float32"))
    generator_side, discriminator_side = gan.side_variables()
    assert {id(v) for v in generator_side} == {id(v) for v in gan.monet_generator.trainable_variables
                                               + gan.patch_head.trainable_variables}
    assert {id(v) for v in discriminator_side} == {id(v) for v in gan.monet_discriminator.trainable_variables}
    # A zero last kernel makes D's logits constant: the adversarial loss then has no gradient
    # for G, and Adam moves a weight only where a gradient is non-zero, so what changes G and
    # the head here is PatchNCE alone.
    logits = gan.monet_discriminator.get_layer("logits")
    logits.kernel.assign(np.zeros(logits.kernel.shape, np.float32))
    before = _weights(gan.monet_generator), _weights(gan.patch_head)
    _one_step(gan)
    after = _weights(gan.monet_generator), _weights(gan.patch_head)
    for old, new in zip(before, after):
        changed = [not np.array_equal(a, b) for a, b in zip(old, new)]
        assert any(changed) == (lambda_nce > 0)


@pytest.mark.parametrize("flip", [True, False])
def test_flip_equivariance_compares_flipped_back_features(flip, monkeypatch):
    """FastCUT's flip: keys from the unflipped photo, queries from G(flip(photo)) flipped back."""
    generator = networks.build_generator(32, 4, seed=0, dropout=0)  # no dropout: G is deterministic
    for layer in generator.layers:  # unit gains: with the initial N(0, 0.02) G hardly sees its input
        if hasattr(layer, "gamma"):
            layer.gamma.assign(np.ones(layer.gamma.shape, np.float32))
    layers = cut.DEFAULT_NCE_LAYERS["unet"]
    gan = cut.CUT(generator, networks.build_discriminator(32, 4, seed=1), layers, nce_identity=False,
                  nce_patches=1024, flip_equivariance=True, seed=0)  # every position: no sampling
    monkeypatch.setattr(gan, "_flip_coin", lambda: keras.ops.convert_to_tensor(flip))
    rng = np.random.default_rng(0)
    monet, photo = (rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32) for _ in range(2))
    terms, _, _ = gan.step_losses((keras.ops.convert_to_tensor(monet), keras.ops.convert_to_tensor(photo)))

    features = patchnce.feature_model(generator, layers)
    keys = features.predict_on_batch(photo)
    translated = generator.predict_on_batch(np.ascontiguousarray(photo[:, :, ::-1]) if flip else photo)
    queries = [q[:, :, ::-1] if flip else q for q in features.predict_on_batch(translated)]
    head = {la.name: la.get_weights() for la in gan.patch_head.layers if isinstance(la, keras.layers.Dense)}
    indices = [np.arange(k.shape[1] * k.shape[2]) for k in keys]
    want = _numpy_patch_nce(keys, queries, head, indices)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(terms["nce_loss"]), want, rtol=1e-4)
    if flip:  # the flipped translation's features, compared unflipped, score differently
        unflipped = features.predict_on_batch(translated)
        assert not np.allclose(_numpy_patch_nce(keys, unflipped, head, indices), want, rtol=1e-3)


def test_fastcut_trains_through_the_kit():
    gan = build_gan(tiny("Os", model="cut", base_filters=4, nce_identity=False, lambda_nce=10.0,
                         nce_flip_equivariance=True, precision="float32"))
    assert gan.flip_equivariance
    before = _weights(gan.monet_generator)
    _one_step(gan)
    assert any(not np.array_equal(a, b) for a, b in zip(before, _weights(gan.monet_generator)))
    with pytest.raises(MonetKerasError, match="nce_flip_equivariance"):
        tiny("Os", model="cut", nce_flip_equivariance="maybe")


def test_cut_trains_on_batches_of_unknown_size():
    # A dataset batched without drop_remainder leaves the batch size unknown when the step is
    # traced (TensorFlow could not build the gradient of PatchNCE's diagonal then).
    import tensorflow as tf

    gan = build_gan(tiny("Os", model="cut", base_filters=4, precision="float32"))
    images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, images[::-1])).batch(2)  # 2, then 1
    history = gan.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert all(np.isfinite(values[-1]) for values in history.history.values())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_kaggle_folder(str(tmp_path_factory.mktemp("kaggle")), n_monet=4, n_photo=6, size=32)


@pytest.mark.slow
def test_cut_trains_saves_and_resumes(folder, tmp_path):
    out = tmp_path / "run"
    config = tiny("Os", model="cut", data_dir=folder, out_dir=str(out), batch_size=2,
                  diffaugment="translation", evaluate=False, make_submission=False)
    first = train(config, verbose=0)
    assert first.epochs_trained == 1
    row = first.history[0]
    assert set(cut.LOSS_NAMES) <= set(row) and all(np.isfinite(row[name]) for name in cut.LOSS_NAMES)
    assert not (out / "photo_generator.keras").exists()
    saved = checkpoints.list_checkpoints(out / "checkpoints")
    with np.load(saved[0]) as arrays:
        assert any(key.startswith("patch_head/") for key in arrays.files)

    resumed = train(config.replace(epochs=2), verbose=0)
    assert resumed.resumed_from == 1 and resumed.epochs_trained == 1
    assert [r["epoch"] for r in resumed.history] == [1, 2]

    # The saved generator loads with Keras alone (no monet_keras) and is the trained G.
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = ("import sys, numpy as np, keras; m = keras.saving.load_model(sys.argv[1]); "
              "np.save(sys.argv[3], np.asarray(m(np.load(sys.argv[2]), training=False))); "
              "assert 'monet_keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", script, str(out / "monet_generator.keras"), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, cwd=str(tmp_path),
                   env=dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="2"))
    gan = build_gan(config)
    assert checkpoints.restore_latest(gan, out / "checkpoints") == 2
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"),
                               keras.ops.convert_to_numpy(gan.monet_generator(x, training=False)), atol=1e-5)

    # The run's figures: the learning curves show CUT's own terms; there is no cycle to check.
    assert (out / "learning_curves.png").stat().st_size > 0
    from monet_keras.figures import self_adversarial

    written = self_adversarial.write_figures(str(out), folder, count=2)
    assert [os.path.basename(p) for p in written] == ["augmentation_examples.png", "diffaugment_examples.png"]
    assert not (out / "self_adversarial_check.png").exists()
