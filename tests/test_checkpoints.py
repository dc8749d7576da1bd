"""The checkpoint format: one array per variable, keyed by its path, restored by key (never by position)."""

import os

import keras
import numpy as np
import pytest

from monet_keras.config import tiny
from monet_keras.errors import MonetKerasError
from monet_keras.model.cyclegan import CycleGAN
from monet_keras.train import checkpoints
from monet_keras.train.training import build_gan

NETWORKS = ("monet_generator", "photo_generator", "monet_discriminator", "photo_discriminator")


def _randomize(gan, seed):
    """Random weights and optimizer slots (one Adam step with random gradients)."""
    rng = np.random.default_rng(seed)
    for network in gan.networks:
        for variable in network.weights:
            variable.assign(rng.normal(size=variable.shape).astype(np.float32))
    gradients = [rng.normal(size=v.shape).astype(np.float32) for v in gan.trainable_variables]
    gan.optimizer.apply(gradients, gan.trainable_variables)


def _slots(optimizer, weight):
    """Adam's slots of ``weight``, found through Keras's own index of the optimizer's variables
    (independently of the slot names the checkpoint keys are matched by)."""
    index = optimizer._get_variable_index(weight)
    slots = {"momentum": optimizer._momentums[index], "velocity": optimizer._velocities[index]}
    if optimizer.use_ema:
        slots["average"] = optimizer._model_variables_moving_average[index]
    return slots


def test_keys_are_the_variable_paths(tmp_path):
    gan = build_gan(tiny("Os", data_dir="unused", ema_decay=0.9))
    _randomize(gan, 0)
    path = checkpoints.save_checkpoint(gan, tmp_path, 7)
    with np.load(path) as data:
        stored = {key: data[key] for key in data.files}

    # Expected keys from the networks' own weight paths and Keras's slot names, walked here.
    # The generators share weight paths (both have down1_conv/kernel): each slot must be stored
    # under its own network's key.
    assert gan.monet_generator.weights[0].path == gan.photo_generator.weights[0].path
    expected = {"epoch", "optimizer/iteration", "optimizer/learning_rate"}
    for network in gan.networks:
        for weight in network.weights:
            key = f"{network.name}/{weight.path}"
            expected.add(key)
            np.testing.assert_array_equal(stored[key], keras.ops.convert_to_numpy(weight))
            if not weight.trainable:
                continue
            slots = _slots(gan.optimizer, weight)
            assert set(slots) == {"momentum", "velocity", "average"}
            for slot, variable in slots.items():
                expected.add(f"{key}/{slot}")
                np.testing.assert_array_equal(stored[f"{key}/{slot}"], keras.ops.convert_to_numpy(variable))
    assert stored["optimizer/iteration"] == 1
    assert set(stored) == expected
    assert int(stored["epoch"]) == 7
    assert "monet_generator/down1_conv/kernel/momentum" in stored  # the format the module documents

    # Keys do not depend on the optimizer's name (newer Keras numbers them per process: adam,
    # adam_1, ...; 3.8 does not, so one is renamed here before it builds its variables).
    other = build_gan(tiny("Os", data_dir="unused", ema_decay=0.9))
    other.optimizer.name = "renamed_adam"
    assert other.optimizer.name != gan.optimizer.name
    assert checkpoints.checkpoint_variables(other).keys() == checkpoints.checkpoint_variables(gan).keys()


def _network(name, first):
    """The sum of two same-shaped Dense layers ``a`` and ``b`` on parallel branches, ``first``
    first (so first in ``network.weights``)."""
    inputs = keras.Input((4,))
    order = (first, "b" if first == "a" else "a")
    branches = [keras.layers.Dense(4, name=n)(inputs) for n in order]
    return keras.Model(inputs, keras.layers.Add(name="sum")(branches), name=name)


def _gan(first):
    gan = CycleGAN(*(_network(name, first) for name in NETWORKS), seed=0)
    gan.compile(keras.optimizers.Adam(1e-3))
    return gan


def _by_name(gan):
    """Every weight and optimizer slot by its own name, so two gans can be compared independently of order."""
    values = {"iteration": keras.ops.convert_to_numpy(gan.optimizer.iterations)}
    for network in gan.networks:
        for w in network.weights:
            values[f"{network.name}/{w.path}"] = keras.ops.convert_to_numpy(w)
            values.update({f"{network.name}/{w.path}/{slot}": keras.ops.convert_to_numpy(v)
                           for slot, v in _slots(gan.optimizer, w).items()})
    return values


def test_restore_goes_by_name_not_position(tmp_path):
    saved, restored = _gan(first="a"), _gan(first="b")
    # Same variables, same shapes, in a different order: a restore by position would swap a and b.
    assert [w.path for w in saved.monet_generator.weights] == ["a/kernel", "a/bias", "b/kernel", "b/bias"]
    assert [w.path for w in restored.monet_generator.weights] == ["b/kernel", "b/bias", "a/kernel", "a/bias"]
    _randomize(saved, 1)
    _randomize(restored, 2)
    checkpoints.save_checkpoint(saved, tmp_path, 3)
    assert checkpoints.restore_latest(restored, tmp_path) == 3
    want, got = _by_name(saved), _by_name(restored)
    assert want.keys() == got.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_position_keyed_or_other_model_checkpoint_is_a_different_model(tmp_path):
    gan = _gan(first="a")
    # The earlier format: arrays numbered by position.
    old = {f"net{i}/{j}": keras.ops.convert_to_numpy(w)
           for i, network in enumerate(gan.networks)
           for j, w in enumerate(network.weights)}
    np.savez(os.path.join(tmp_path, "epoch-0001.npz"), epoch=np.array(1), **old)
    with pytest.raises(MonetKerasError, match=r"belongs to a different model: .*it lacks monet_\w+/a/\w+"
                                              r"; it has net0/0\)"):
        checkpoints.restore_latest(gan, tmp_path)
    assert os.path.exists(os.path.join(tmp_path, "epoch-0001.npz"))  # not mistaken for a corrupt file

    # Same names, another shape.
    wider = CycleGAN(*(keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="a")], name=name)
                       for name in NETWORKS), seed=0)
    wider.compile(keras.optimizers.Adam(1e-3))
    narrow = CycleGAN(*(keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="a")], name=name)
                        for name in NETWORKS), seed=0)
    narrow.compile(keras.optimizers.Adam(1e-3))
    checkpoints.save_checkpoint(wider, tmp_path / "wide", 1)
    with pytest.raises(MonetKerasError,
                       match=r"monet_generator/a/kernel has shape \(4, 5\), the model expects \(4, "):
        checkpoints.restore_latest(narrow, tmp_path / "wide")
