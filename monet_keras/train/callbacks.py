"""Training callbacks: history.csv, sample grids, LR schedule, NaN guard (checkpoints: :mod:`.checkpoints`).

Everything a run writes goes into its RUN_DIR (:mod:`.run_folder`), atomically (temporary name, then rename):

- ``history.csv``: one row per finished epoch (1-based ``epoch``, every loss, learning rate,
  seconds). Written *before* the epoch's checkpoint, and trimmed to the checkpoint's epoch on
  resume, so every epoch appears exactly once.
- ``samples/epoch_NNN.png``: a fixed set of photos and their Monet translation.
"""

import math
import time

import keras

from monet_keras.errors import MonetKerasError
from monet_keras.figures import plots
from monet_keras.train.run_folder import read_history, write_history

# --- history and samples ------------------------------------------------------------------

class HistoryCSV(keras.callbacks.Callback):
    """Append one row per finished epoch to ``path``, keeping rows of earlier, resumed epochs.

    ``columns``: a function returning more ``{column: value}`` for the row (e.g. the time budget's
    planned epochs), called after the callbacks before this one have seen the epoch's end."""

    def __init__(self, path, initial_epoch=0, columns=None):
        super().__init__()
        self.path = path
        self.columns = columns
        self.rows = [r for r in read_history(path) if r["epoch"] <= initial_epoch]
        write_history(path, self.rows)
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["seconds"] = round(time.time() - self._start, 3)
        if self.columns is not None:
            row.update(self.columns())
        self.rows.append(row)
        write_history(self.path, self.rows)


class SampleGrid(keras.callbacks.Callback):
    """After each epoch, save the fixed ``photos`` and their translation as the PNG ``path_of(epoch)``
    (1-based epoch)."""

    def __init__(self, photos, path_of):
        super().__init__()
        self.photos = photos
        self.path_of = path_of

    def on_epoch_end(self, epoch, logs=None):
        fakes = keras.ops.convert_to_numpy(self.model.monet_generator(self.photos, training=False))
        plots.translation_grid(keras.ops.convert_to_numpy(self.photos), fakes,
                               title=f"photo -> Monet, epoch {epoch + 1}",
                               save_path=self.path_of(epoch + 1))


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
    """Set the optimizer's learning rate at the start of each epoch from :func:`decay_factor`."""

    def __init__(self, base_rate, epochs, decay_epochs):
        super().__init__()
        self.base_rate = base_rate
        self.epochs = epochs
        self.decay_epochs = decay_epochs

    def on_epoch_begin(self, epoch, logs=None):
        rate = self.base_rate * decay_factor(epoch, self.epochs, self.decay_epochs)
        self.model.optimizer.learning_rate = rate


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
