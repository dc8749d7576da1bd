"""Checkpoints: every network and optimizer of a CycleGAN in ``checkpoints/epoch-NNNN.npz``.

One array per variable, keyed by the variable's path, so a checkpoint restores by name, never by
position (a network whose layers are built in another order still gets each value back):

- network weights: ``<network>/<variable path>``, e.g. ``monet_generator/down1_conv/kernel``;
- optimizer slots: the key of their weight plus the slot, e.g.
  ``monet_generator/down1_conv/kernel/momentum`` (Adam's ``velocity``, EMA's ``average``);
- the optimizer's own variables (one optimizer updates all four networks): ``optimizer/iteration``
  and ``optimizer/learning_rate`` (a LossScaleOptimizer's own under ``loss_scale/``);
- ``epoch``: the epoch the checkpoint was taken after.

The keys depend only on the network and layer names, so they are the same in every process
(Keras numbers optimizers ``adam``, ``adam_1``, ... in creation order; that name is not used) and
under both Keras backends: a run checkpointed under TensorFlow resumes under JAX and the reverse.
The last ``keep`` checkpoints are kept; an unreadable one is set aside and the previous one used.
"""

import glob
import logging
import os
import re
import zipfile

import keras
import numpy as np

from monet_keras.errors import MonetKerasError
from tfrecords_tools.atomic import atomic_path

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^epoch-(\d{4,})\.npz$")


def _weight_key(network, variable):
    # A path may already start with the network's name (layers built inside its name scope).
    path = variable.path.removeprefix(f"{network.name}/")
    return f"{network.name}/{path}"


def _optimizer_scopes(optimizer):
    """(scope, variables) of ``optimizer``: the one holding the Adam state is ``optimizer`` in
    every precision; a LossScaleOptimizer wrapping it keeps its own variables under ``loss_scale``."""
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is None:
        return [("optimizer", optimizer.variables)]
    owned_by_inner = {id(v) for v in inner.variables}
    return [("optimizer", inner.variables),
            ("loss_scale", [v for v in optimizer.variables if id(v) not in owned_by_inner])]


def _slot_owners(weights, slot_variables):
    """``{id(slot variable): (weight key, slot)}`` for the optimizer's per-weight slots.

    Keras names the slot of a weight "<weight path with '/' as '_'>_<slot>" (e.g.
    down1_conv_kernel_momentum) and creates each kind of slot weight by weight, in the order the
    optimizer was built with. Two networks have weights of the same path (both generators have
    down1_conv/kernel), so the n-th slot of a name belongs to the n-th weight of that path, in
    the optimizer's order. ``weights``: ``(key, variable)`` in that order.
    """
    prefixes = {}
    for key, variable in weights:
        prefixes.setdefault(variable.path.replace("/", "_") + "_", []).append(key)
    seen = {}
    owners = {}
    for variable in slot_variables:
        matches = [p for p in prefixes if variable.name.startswith(p)]
        if not matches:
            continue
        prefix = max(matches, key=len)  # down1_conv_kernel_ rather than down1_conv_ if both were weights
        n = seen[variable.name] = seen.get(variable.name, -1) + 1
        owners[id(variable)] = (prefixes[prefix][n], variable.name[len(prefix):])
    return owners


def checkpoint_variables(gan):
    """``{key: variable}`` for every network weight and optimizer variable of ``gan`` (keys: see
    the module)."""
    keyed = {}

    def add(key, variable):
        if key in keyed:
            raise ValueError(f"two variables of the model have the checkpoint key {key}")
        keyed[key] = variable

    keys = {}
    for network in gan.networks:
        for variable in network.weights:
            keys[id(variable)] = _weight_key(network, variable)
            add(keys[id(variable)], variable)
    trainable = [(keys[id(v)], v) for v in gan.trainable_variables if id(v) in keys]
    for scope, variables in _optimizer_scopes(gan.optimizer):
        owners = _slot_owners(trainable, variables) if scope == "optimizer" else {}
        for variable in variables:
            if id(variable) in owners:
                weight_key, slot = owners[id(variable)]
                add(f"{weight_key}/{slot}", variable)
            else:
                add(f"{scope}/{variable.name}", variable)
    return keyed


def save_checkpoint(gan, directory, epoch, keep=2):
    """Write ``epoch-NNNN.npz`` atomically and delete all but the newest ``keep``."""
    os.makedirs(directory, exist_ok=True)
    arrays = {key: keras.ops.convert_to_numpy(v) for key, v in checkpoint_variables(gan).items()}
    arrays["epoch"] = np.array(epoch, dtype=np.int64)
    path = os.path.join(directory, f"epoch-{epoch:04d}.npz")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
    # Keep the newest `keep` up to this epoch; later ones belong to an abandoned timeline.
    found = list_checkpoints(directory)
    older = [p for p in found if _epoch_of(p) < epoch]
    newer = [p for p in found if _epoch_of(p) > epoch]
    for old in newer + older[keep - 1:]:
        os.remove(old)
    return path


def _epoch_of(path):
    return int(CHECKPOINT_PATTERN.match(os.path.basename(path)).group(1))


def list_checkpoints(directory):
    """Checkpoint files, newest first."""
    found = [p for p in glob.glob(os.path.join(directory, "epoch-*.npz"))
             if CHECKPOINT_PATTERN.match(os.path.basename(p))]
    return sorted(found, reverse=True)


class _OtherModel(Exception):
    """The checkpoint is readable but holds a different model or optimizer state."""


def _restore(variables, path):
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    epoch = int(arrays.pop("epoch"))
    missing, unknown = sorted(set(variables) - set(arrays)), sorted(set(arrays) - set(variables))
    if missing or unknown:
        examples = [f"it lacks {missing[0]}"] if missing else []
        examples += [f"it has {unknown[0]}"] if unknown else []
        raise _OtherModel(f"{len(missing)} variables missing, {len(unknown)} unknown ({'; '.join(examples)})")
    for key, variable in variables.items():
        if arrays[key].shape != tuple(variable.shape):
            raise _OtherModel(f"{key} has shape {arrays[key].shape}, "
                              f"the model expects {tuple(variable.shape)}")
    for key, variable in variables.items():
        variable.assign(arrays[key])
    return epoch


def restore_latest(gan, directory):
    """Restore the newest readable checkpoint; return its epoch (0 when there is none).

    An unreadable checkpoint (truncated, corrupt) is reported, renamed to ``*.bad`` (so later
    saves never mix with it) and the previous one used. A checkpoint of a different model or
    optimizer (names or shapes differ) is a user error.
    """
    gan.build_optimizer()
    variables = checkpoint_variables(gan)
    for path in list_checkpoints(directory):
        try:
            return _restore(variables, path)
        except _OtherModel as e:
            raise MonetKerasError(f"checkpoint {path} belongs to a different model: {e}; "
                                  f"use another output folder") from None
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as e:
            os.replace(path, path + ".bad")
            logger.warning(f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); "
                           f"kept as {os.path.basename(path)}.bad, trying the previous one")
    return 0


class Checkpoint(keras.callbacks.Callback):
    """Save a checkpoint after every epoch (after history.csv has its row)."""

    def __init__(self, directory, keep=2):
        super().__init__()
        self.directory = directory
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        save_checkpoint(self.model, self.directory, epoch + 1, keep=self.keep)
