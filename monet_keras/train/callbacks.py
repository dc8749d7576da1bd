"""Training callbacks and checkpoints: history.csv, sample grids, resume, LR schedule, NaN guard.

Everything a run writes goes into its RUN_DIR, atomically (temporary name, then rename):

- ``history.csv``: one row per finished epoch (1-based ``epoch``, every loss, learning rate,
  seconds). Written *before* the epoch's checkpoint, and trimmed to the checkpoint's epoch on
  resume, so every epoch appears exactly once.
- ``samples/epoch_NNN.png``: a fixed set of photos and their Monet translation.
- ``checkpoints/epoch-NNNN.npz``: all four networks and all four optimizers (slots, step count,
  learning rate), the last ``keep`` of them. If the newest cannot be read, the previous one is used.
"""

import csv
import glob
import io
import math
import os
import re
import time
import zipfile

import keras
import numpy as np

from monet_keras.figures import plots
from tfrecords_tools.atomic import atomic_path, write_text
from monet_keras.errors import MonetKerasError

CHECKPOINT_PATTERN = re.compile(r"^epoch-(\d{4,})\.npz$")


# --- checkpoints ----------------------------------------------------------------------------

def _checkpoint_arrays(gan):
    arrays = {}
    for i, (network, optimizer) in enumerate(gan.networks_and_optimizers):
        for j, variable in enumerate(network.weights):
            arrays[f"net{i}/{j}"] = keras.ops.convert_to_numpy(variable)
        for j, variable in enumerate(optimizer.variables):
            arrays[f"opt{i}/{j}"] = keras.ops.convert_to_numpy(variable)
    return arrays


def save_checkpoint(gan, directory, epoch, keep=2):
    """Write ``epoch-NNNN.npz`` atomically and delete all but the newest ``keep``."""
    os.makedirs(directory, exist_ok=True)
    arrays = _checkpoint_arrays(gan)
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


def _restore(gan, path):
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    expected = _checkpoint_arrays(gan)
    differ = sorted(set(expected) ^ (set(arrays) - {"epoch"}))
    if differ:
        raise _OtherModel(f"{len(differ)} arrays differ in name (e.g. {differ[0]})")
    for key, value in expected.items():
        if arrays[key].shape != value.shape:
            raise _OtherModel(f"{key} has shape {arrays[key].shape}, the model expects {value.shape}")
    for i, (network, optimizer) in enumerate(gan.networks_and_optimizers):
        for j, variable in enumerate(network.weights):
            variable.assign(arrays[f"net{i}/{j}"])
        for j, variable in enumerate(optimizer.variables):
            variable.assign(arrays[f"opt{i}/{j}"])
    return int(arrays["epoch"])


def restore_latest(gan, directory, log=print):
    """Restore the newest readable checkpoint; return its epoch (0 when there is none).

    An unreadable checkpoint (truncated, corrupt) is reported, renamed to ``*.bad`` (so later
    saves never mix with it) and the previous one used. A checkpoint of a different model or
    optimizer (names or shapes differ) is a user error.
    """
    gan.build_optimizers()
    for path in list_checkpoints(directory):
        try:
            return _restore(gan, path)
        except _OtherModel as e:
            raise MonetKerasError(f"checkpoint {path} belongs to a different model: {e}; "
                                  f"use another output folder") from None
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as e:
            os.replace(path, path + ".bad")
            log(f"warning: checkpoint {path} is unreadable ({type(e).__name__}: {e}); "
                f"kept as {os.path.basename(path)}.bad, trying the previous one")
    return 0


# --- history ---------------------------------------------------------------------------------

def read_history(path):
    """history.csv as a list of dicts with float values (``epoch`` as int)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in rows]


def _write_history(path, rows):
    if not rows:
        if os.path.exists(path):
            os.remove(path)
        return
    columns = list(rows[0])
    for row in rows[1:]:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


class HistoryCSV(keras.callbacks.Callback):
    """Append one row per finished epoch to ``path``, keeping rows of earlier, resumed epochs."""

    def __init__(self, path, initial_epoch=0):
        super().__init__()
        self.path = path
        self.rows = [r for r in read_history(path) if r["epoch"] <= initial_epoch]
        _write_history(path, self.rows)
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        optimizer = self.model.monet_generator_optimizer
        row["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        row["seconds"] = round(time.time() - self._start, 3)
        self.rows.append(row)
        _write_history(self.path, self.rows)


class Checkpoint(keras.callbacks.Callback):
    """Save a checkpoint after every epoch (after history.csv has its row)."""

    def __init__(self, directory, keep=2):
        super().__init__()
        self.directory = directory
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        save_checkpoint(self.model, self.directory, epoch + 1, keep=self.keep)


class SampleGrid(keras.callbacks.Callback):
    """After each epoch, save the fixed ``photos`` and their translation as a PNG."""

    def __init__(self, photos, directory):
        super().__init__()
        self.photos = photos
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        fakes = keras.ops.convert_to_numpy(self.model.monet_generator(self.photos, training=False))
        plots.translation_grid(keras.ops.convert_to_numpy(self.photos), fakes,
                               title=f"photo -> Monet, epoch {epoch + 1}",
                               save_path=os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png"))


# --- learning rate and numerical safety --------------------------------------------------------

def decay_factor(epoch, epochs, decay_epochs):
    """Learning-rate factor of 0-based ``epoch``: 1, then linear towards 0 over the last ``decay_epochs``.

    As in Zhu et al. (2017): factor = 1 - max(0, epoch - (epochs - decay_epochs) + 1) / (decay_epochs + 1),
    so the decayed epochs get N/(N+1), ..., 1/(N+1) and the rate would reach 0 one epoch after the end.
    """
    if decay_epochs <= 0:
        return 1.0
    return 1.0 - max(0, epoch - (epochs - decay_epochs) + 1) / (decay_epochs + 1)


class LinearDecay(keras.callbacks.Callback):
    """Set every optimizer's learning rate at the start of each epoch from :func:`decay_factor`."""

    def __init__(self, base_rate, epochs, decay_epochs):
        super().__init__()
        self.base_rate = base_rate
        self.epochs = epochs
        self.decay_epochs = decay_epochs

    def on_epoch_begin(self, epoch, logs=None):
        rate = self.base_rate * decay_factor(epoch, self.epochs, self.decay_epochs)
        for _, optimizer in self.model.networks_and_optimizers:
            optimizer.learning_rate = rate


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at once when a loss turns NaN or infinite, naming the loss and the step.

    Raises MonetKerasError from inside ``fit``, so no epoch-end callback runs: the last
    checkpoint and history.csv stay those of the last good epoch.
    """

    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            value = float(value)
            if not math.isfinite(value):
                step = self.epoch * self.steps_per_epoch + batch + 1
                raise MonetKerasError(
                    f"{name} became {value} at step {step} (epoch {self.epoch + 1}, batch {batch + 1}); "
                    f"training stopped, the last good checkpoint and history.csv are kept")
