"""The time budget: plan a run to fit a wall-clock limit, and always leave time for images.zip.

A Kaggle notebook session is killed at its run limit with whatever it has. With a budget
(``time_budget``: ``"4h30m"``, ``"90m"``, ``"600s"``, a number of seconds, ``"auto"`` or none):

1. :class:`RunClock` starts at the run's first library call (the notebook's setup cell; in the
   ``train`` command, when training starts) and measures everything against the budget.
2. Before training, the work after it is measured: translating a few batches of photos gives
   the images.zip time; the notebook adds the evaluation (a few extractor batches) and the
   figures. Each is reserved at :data:`SAFETY_FACTOR` times its estimate.
3. :class:`TimeBudget` (a Keras callback) measures the step time after a warm-up step, plans how
   many epochs fit (:func:`plan`, plain arithmetic), revises the plan after every epoch, sets
   the learning rate from the plan (a linear decay over the planned last part, when
   ``lr_decay_epochs`` asks for one) and stops training at an epoch boundary, or at a step
   boundary when not even one epoch fits or when the steps slow down so that the next one
   would not fit.

``"auto"`` is Kaggle's run limit for this competition's notebooks (:data:`KAGGLE_RUN_LIMIT_S`)
minus :data:`KAGGLE_MARGIN_S` on Kaggle, and no budget elsewhere.
"""

import contextlib
import dataclasses
import logging
import math
import re
import time

import keras

from monet_keras.errors import MonetKerasError
from monet_keras.train.callbacks import decay_factor

logger = logging.getLogger(__name__)

KAGGLE_RUN_LIMIT_S = 300 * 60  # a notebook submission of gan-getting-started may run 300 minutes
# Kept free of the plan on Kaggle: the session's start before the first cell, saving /kaggle/working
# after the last one, and a slower machine than measured.
KAGGLE_MARGIN_S = 15 * 60
SAFETY_FACTOR = 1.5  # the measured work after training is reserved at 1.5 times its estimate
FIGURES_S = 20.0  # the notebook's figures after training (examples, diagnostics, this report)
WARMUP_STEPS = 1  # the first step of a process traces (and compiles) the train step: not timed
RECENT_STEPS = 5  # the steps that say whether the machine has slowed down

_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d*)?)h)?(?:(?P<m>\d+(?:\.\d*)?)m)?(?:(?P<s>\d+(?:\.\d*)?)s)?$")


def parse_duration(value):
    """Seconds of ``value``: a number (of seconds), or text such as ``"4h30m"``, ``"90m"``, ``"600s"``,
    ``"1.5h"`` or ``"600"``; None for None, ``""`` or ``"none"``. ``"auto"`` is :func:`resolve_budget`'s."""
    if value is None or isinstance(value, bool):
        seconds = None if value is None else -1
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        if text in ("", "none"):
            return None
        match = _DURATION.match(text)
        try:
            seconds = float(text)
        except ValueError:
            if match is None or not any(match.groupdict().values()):
                raise MonetKerasError(f"bad parameter time_budget={value!r}: expected a duration such as "
                                      f"4h30m, 90m, 600s or 600 (seconds), auto or none") from None
            parts = match.groupdict()
            units = (("h", 3600), ("m", 60), ("s", 1))
            seconds = sum(float(parts[unit] or 0) * scale for unit, scale in units)
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise MonetKerasError(f"bad parameter time_budget={value!r}: expected a positive duration")
    return seconds


def resolve_budget(value, on_kaggle=None):
    """The budget in seconds of ``value`` (None: no budget). ``"auto"``: Kaggle's run limit minus
    the margin when ``on_kaggle()`` (default: :func:`monet_keras.data.source.on_kaggle`), else None."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        if on_kaggle is None:
            from monet_keras.data.source import on_kaggle
        return float(KAGGLE_RUN_LIMIT_S - KAGGLE_MARGIN_S) if on_kaggle() else None
    return parse_duration(value)


def format_seconds(seconds):
    """``4h05m``, ``12m30s`` or ``42s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class RunClock:
    """The run's clock, started when it is made, with its budget and where the time went.

    ``clock``: a function returning seconds (tests pass a fake one). ``budget_s``: None = no
    budget (set later with :meth:`set_budget` once the config is known).
    """

    def __init__(self, budget_s=None, clock=time.monotonic):
        self.clock = clock
        self.started = clock()
        self.budget_s = budget_s
        self.phases = {}

    def set_budget(self, time_budget, on_kaggle=None):
        """Set the budget from a ``time_budget`` value (see :func:`resolve_budget`); returns self."""
        self.budget_s = resolve_budget(time_budget, on_kaggle)
        if self.budget_s is None:
            logger.info("time budget: none")
        else:
            logger.info(f"time budget: {format_seconds(self.budget_s)} for the whole run "
                        f"({format_seconds(self.remaining())} left)")
        return self

    def elapsed(self):
        return self.clock() - self.started

    def remaining(self):
        """Seconds left of the budget (infinite without one)."""
        return math.inf if self.budget_s is None else self.budget_s - self.elapsed()

    @contextlib.contextmanager
    def phase(self, name):
        """Add the time spent inside the ``with`` block to ``phases[name]``."""
        start = self.clock()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + self.clock() - start

    def report(self):
        """The JSON-ready account of the run's time: budget, elapsed and each phase's seconds."""
        return {"budget_s": self.budget_s, "elapsed_s": round(self.elapsed(), 3),
                "phases_s": {name: round(seconds, 3) for name, seconds in self.phases.items()}}


# --- the planner: plain arithmetic ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Plan:
    """How far training goes: ``epochs`` in all (those done before included), ``steps`` in all,
    and ``finish_s``, the run clock's expected reading when training ends."""

    epochs: int
    steps: int
    finish_s: float

    def describe(self, budget_s, reserve_s):
        return (f"{self.epochs} epochs ({self.steps} steps), training ends at about "
                f"{format_seconds(self.finish_s)} of the {format_seconds(budget_s)} budget "
                f"({format_seconds(reserve_s)} kept for what follows)")


def plan(elapsed_s, budget_s, reserve_s, step_s, overhead_s, steps_per_epoch, epochs_done, max_epochs):
    """The epochs that fit: as many whole epochs of ``steps_per_epoch`` steps of ``step_s`` seconds
    plus ``overhead_s`` per epoch (checkpoint, samples) as finish by ``budget_s - reserve_s``,
    from ``elapsed_s`` and ``epochs_done``, at most ``max_epochs`` in all. When not one more epoch
    fits, ``steps`` counts the steps of a last, partial epoch that do."""
    step_s = max(step_s, 1e-6)  # a step too fast for the clock still takes time
    epoch_s = steps_per_epoch * step_s + overhead_s
    available = budget_s - reserve_s - elapsed_s
    more = max(0, min(max_epochs - epochs_done, math.floor(available / epoch_s)))
    epochs = epochs_done + more
    partial = 0
    if more == 0 and epochs < max_epochs:
        partial = max(0, min(steps_per_epoch - 1, math.floor((available - overhead_s) / step_s)))
    return Plan(epochs, epochs * steps_per_epoch + partial, elapsed_s + more * epoch_s + partial * step_s)


def planned_decay_epochs(lr_decay_epochs, epochs, planned_epochs):
    """The decay's length for a plan of ``planned_epochs``: the same share of the run as
    ``lr_decay_epochs`` of ``epochs`` (at least one epoch when there is a decay)."""
    if lr_decay_epochs <= 0:
        return 0
    return max(1, min(planned_epochs, round(lr_decay_epochs * planned_epochs / epochs)))


def planned_rate(base_rate, epoch, planned_epochs, decay_epochs):
    """The learning rate of 0-based ``epoch`` under a plan of ``planned_epochs`` (an epoch past the
    plan keeps the last planned epoch's rate)."""
    return base_rate * decay_factor(min(epoch, max(planned_epochs - 1, 0)), planned_epochs, decay_epochs)


# --- measuring the work after training -------------------------------------------------------

def reserve_seconds(first_s, later_s, count, items_per_call):
    """Seconds reserved for ``count`` items done ``items_per_call`` at a time, from a timed first call
    (``first_s``, with the tracing) and a later call (``later_s``), times :data:`SAFETY_FACTOR`."""
    calls = max(0, math.ceil(count / items_per_call) - 1)
    return SAFETY_FACTOR * (first_s + calls * later_s)


def measure_translation(generator, files, image_size, count, batch_size=32, quality=95, clock=time.monotonic):
    """Seconds to reserve for writing images.zip of ``count`` photos: two batches of ``files`` translated
    by ``generator`` and JPEG-encoded as :func:`monet_keras.submit.translate.write_submission` does."""
    from monet_keras.accel import policy
    from monet_keras.data.pipeline import iterate, load_images
    from monet_keras.submit import translate

    run = translate.translate_function(generator, image_size, policy.inference_precision())
    times = []
    for photos in iterate(files, load_images(files, image_size).batch(batch_size).take(2)):
        start = clock()
        for pixels in run(photos):
            translate.encode_jpeg(pixels, quality)
        times.append(clock() - start)
    if not times:
        return 0.0
    return reserve_seconds(times[0], times[-1], count, min(batch_size, count))


def measure_evaluation(extractor, count, batch_size=32, clock=time.monotonic):
    """Seconds to reserve for extracting the features of ``count`` images with ``extractor`` (two
    timed calls on a batch of ``batch_size``), as :func:`monet_keras.evaluate.metrics.evaluate` does."""
    import numpy as np

    batch = np.zeros((min(batch_size, count), extractor.image_size, extractor.image_size, 3), np.float32)
    times = []
    for _ in range(2):
        start = clock()
        extractor(batch)
        times.append(clock() - start)
    return reserve_seconds(times[0], times[1], count, len(batch))


# --- the callback ----------------------------------------------------------------------------

class TimeBudget(keras.callbacks.Callback):
    """Plan training to ``run_clock``'s budget, set the learning rate from the plan and stop in time.

    ``reserve_s``: seconds kept for everything after training. ``max_epochs``: the config's
    epochs (a plan never goes past them). ``lr_decay_epochs`` of ``max_epochs``: the decay, scaled
    to the plan (:func:`planned_decay_epochs`). Call :meth:`history_columns` after an epoch for
    its planned epochs and the steps it took (fewer than ``steps_per_epoch`` when stopped inside it).
    """

    def __init__(self, run_clock, reserve_s, steps_per_epoch, max_epochs, initial_epoch, base_rate,
                 lr_decay_epochs=0):
        super().__init__()
        self.run_clock = run_clock
        self.reserve_s = reserve_s
        self.steps_per_epoch = steps_per_epoch
        self.max_epochs = max_epochs
        self.epochs_done = initial_epoch
        self.base_rate = base_rate
        self.lr_decay_epochs = lr_decay_epochs
        self.plan = None
        self.overhead_s = 0.0  # between an epoch's last step and the next one's first: callbacks, saving
        self.stopped = ""  # why training stopped early, if it did
        self._steps_seen = 0
        self._steps_in_epoch = 0
        self._epoch_steps = []  # step times of the current epoch
        self._recent = []
        self._mark = self._epoch_start = None
        self._epoch_end = None

    @property
    def planned_epochs(self):
        return self.plan.epochs if self.plan else self.max_epochs

    def _available(self):
        # Plans keep the whole reserve; stopping inside an epoch waits until even the reserve's
        # expected share (without the safety factor) would be cut into, so noise in the step time
        # does not cut the planned last epoch short.
        return self.run_clock.remaining() - self.reserve_s / SAFETY_FACTOR

    def _step_estimate(self):
        measured = self._recent or self._epoch_steps
        return max(sum(measured) / len(measured), sum(self._epoch_steps) / max(len(self._epoch_steps), 1))

    def _replan(self, elapsed_s):
        self.plan = plan(elapsed_s, self.run_clock.budget_s, self.reserve_s,
                         self._step_estimate(), self.overhead_s, self.steps_per_epoch, self.epochs_done,
                         self.max_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        now = self.run_clock.clock()
        if self._epoch_end is not None:
            self.overhead_s = now - self._epoch_end
        self._mark = self._epoch_start = now
        self._epoch_steps = []
        decay = planned_decay_epochs(self.lr_decay_epochs, self.max_epochs, self.planned_epochs)
        rate = planned_rate(self.base_rate, epoch, self.planned_epochs, decay)
        self.model.optimizer.learning_rate = rate

    def on_train_batch_end(self, batch, logs=None):
        now = self.run_clock.clock()
        step_s, self._mark = now - self._mark, now
        self._steps_seen += 1
        self._steps_in_epoch = batch + 1
        if self._steps_seen <= WARMUP_STEPS:
            measured = step_s  # the traced step: an over-estimate until a real one is timed
        else:
            self._epoch_steps.append(step_s)
            self._recent = (self._recent + [step_s])[-RECENT_STEPS:]
            measured = max(step_s, self._step_estimate())  # a sudden slow-down counts at once
            if self.plan is None:  # the first plan counts the current epoch from its start
                self._replan(self._epoch_start - self.run_clock.started)
                logger.info(f"plan: {self.plan.describe(self.run_clock.budget_s, self.reserve_s)}")
        if self._available() < measured + self.overhead_s:
            self.stopped = (f"stopped at step {batch + 1} of epoch {self.epochs_done + 1}: the next step "
                            f"(~{measured:.2f} s) would not fit the time budget")
            logger.warning(self.stopped)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self._epoch_end = self.run_clock.clock()
        self.epochs_done = epoch + 1
        if self._epoch_steps:
            before = self.planned_epochs
            self._replan(self.run_clock.elapsed())
            if self.plan.epochs != before:
                logger.info(f"plan revised after epoch {epoch + 1}: "
                            f"{self.plan.describe(self.run_clock.budget_s, self.reserve_s)}")
        if self.epochs_done >= self.planned_epochs and self.epochs_done < self.max_epochs:
            if not self.stopped:
                self.stopped = f"stopped after epoch {self.epochs_done}, as planned for the time budget"
                logger.info(self.stopped)
            self.model.stop_training = True

    def history_columns(self):
        """Columns for the history.csv row of the epoch that just ended."""
        return {"planned_epochs": self.planned_epochs, "steps": self._steps_in_epoch}

    def summary(self):
        """The JSON-ready record of the budget and the plan (RUN_DIR/budget.json)."""
        return {"budget_s": self.run_clock.budget_s, "reserve_s": round(self.reserve_s, 3),
                "planned_epochs": self.planned_epochs,
                "planned_steps": self.plan.steps if self.plan else None,
                "expected_finish_s": round(self.plan.finish_s, 3) if self.plan else None,
                "epochs_done": self.epochs_done,
                "step_s": round(self._step_estimate(), 4) if self._recent else None,
                "epoch_overhead_s": round(self.overhead_s, 3), "stopped": self.stopped}
