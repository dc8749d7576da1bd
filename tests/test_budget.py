"""The time budget: durations, the planner's arithmetic, the learning rate of a plan, and budgeted
training runs on a clock whose steps the test slows down (real time plus injected seconds)."""

import json
import logging
import os
import re
import time
import zipfile

import keras
import pytest

from monet_keras.config import tiny
from monet_keras.errors import MonetKerasError
from monet_keras.train import budget
from monet_keras.train.run_folder import RunFolder

# --- durations -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [
    ("4h30m", 16200), ("90m", 5400), ("600s", 600), ("600", 600), (600, 600), (2.5, 2.5), ("1.5h", 5400),
    ("1h0m30s", 3630), (" 2M ", 120), (None, None), ("", None), ("none", None)])
def test_parse_duration(value, seconds):
    assert budget.parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["5x", "h", "4h30", "-3", 0, -1, True, "inf", "30m4h"])
def test_parse_duration_rejects_what_is_not_a_positive_duration(value):
    with pytest.raises(MonetKerasError, match="bad parameter time_budget="):
        budget.parse_duration(value)


def test_auto_is_kaggles_run_limit_minus_the_margin_on_kaggle_only():
    assert budget.resolve_budget("auto", on_kaggle=lambda: True) == (300 - 15) * 60
    assert budget.resolve_budget("auto", on_kaggle=lambda: False) is None
    assert budget.resolve_budget("90m", on_kaggle=lambda: True) == 5400


def test_time_budget_in_the_config():
    config = tiny().replace(time_budget="150")
    assert config.validate().time_budget == "150"
    assert tiny().replace(time_budget=150.0).time_budget == 150.0
    assert tiny().replace(time_budget="none").time_budget is None
    assert tiny().time_budget == "auto"
    with pytest.raises(MonetKerasError, match="time_budget"):
        tiny().replace(time_budget="soon").validate()


def test_time_budget_on_the_command_line(monkeypatch):
    from monet_keras import cli
    from monet_keras.experiments import runner

    args = cli.build_parser().parse_args(["train", "--data", "d", "--out", "o", "--time-budget", "90m"])
    assert cli.config_from_args(args).time_budget == "90m"
    args = cli.build_parser().parse_args(["train", "--data", "d", "--out", "o", "--time-budget", "soon"])
    with pytest.raises(MonetKerasError, match="bad parameter time_budget='soon'"):
        cli.config_from_args(args)
    seen = {}
    monkeypatch.setattr(runner, "run_experiments", lambda *args, **kwargs: seen.update(common=args[3]) or {})
    cli.main(["experiments", "--data", "d", "--out", "o", "--variants", "Os", "--time-budget", "150s",
              "-p", "epochs", "3"])
    assert seen["common"] == {"epochs": "3", "time_budget": "150s"}


def test_run_clock_counts_phases_on_an_injected_clock():
    now = [100.0]
    clock = budget.RunClock(clock=lambda: now[0]).set_budget("1m", on_kaggle=lambda: False)
    now[0] = 110.0
    with clock.phase("training"):
        now[0] = 130.0
    with clock.phase("training"):
        now[0] = 135.0
    assert clock.elapsed() == 35.0 and clock.remaining() == 25.0
    assert clock.report() == {"budget_s": 60.0, "elapsed_s": 35.0, "phases_s": {"training": 25.0}}
    assert budget.RunClock().remaining() == float("inf")


# --- the planner ------------------------------------------------------------------------------

def test_plan_fits_whole_epochs_between_now_and_the_reserve():
    # 1000 s budget, 100 spent, 200 kept: 700 s for epochs of 50 * 2 + 10 = 110 s -> 6 more.
    plan = budget.plan(elapsed_s=100, budget_s=1000, reserve_s=200, step_s=2, overhead_s=10,
                       steps_per_epoch=50, epochs_done=3, max_epochs=1000)
    assert plan == budget.Plan(epochs=9, steps=450, finish_s=760)
    # never past the config's epochs
    assert budget.plan(100, 1000, 200, 2, 10, 50, 3, max_epochs=5) == budget.Plan(5, 250, 320)


def test_plan_of_less_than_one_epoch_counts_the_steps_that_fit():
    # 95 s left, 10 of them for the epoch's end: 85 s / 2 s = 42 steps of the next epoch.
    plan = budget.plan(elapsed_s=0, budget_s=100, reserve_s=5, step_s=2, overhead_s=10,
                       steps_per_epoch=50, epochs_done=0, max_epochs=10)
    assert plan == budget.Plan(epochs=0, steps=42, finish_s=84)
    assert budget.plan(0, 100, 200, 2, 10, 50, 4, 10) == budget.Plan(4, 200, 0)  # over budget: nothing more


def test_learning_rate_decays_over_the_planned_last_part():
    # lr_decay_epochs 500 of 1000 = half the run; a plan of 10 epochs decays over its last 5,
    # as Zhu et al.: the decayed epochs get 5/6, 4/6, ..., 1/6 of the rate.
    decay = budget.planned_decay_epochs(500, 1000, 10)
    assert decay == 5
    rates = [budget.planned_rate(2e-4, epoch, 10, decay) for epoch in range(10)]
    assert rates[:5] == pytest.approx([2e-4] * 5)
    assert rates[5:] == pytest.approx([2e-4 * k / 6 for k in (5, 4, 3, 2, 1)])
    assert budget.planned_rate(2e-4, 12, 10, decay) == pytest.approx(2e-4 / 6)  # past the plan: its last
    assert budget.planned_decay_epochs(0, 1000, 10) == 0
    assert budget.planned_decay_epochs(1, 1000, 10) == 1  # a decay asked for is never rounded away


def test_format_seconds():
    assert [budget.format_seconds(s) for s in (42, 750, 17100)] == ["42s", "12m30s", "4h45m"]


# --- budgeted training on a clock the test slows down ----------------------------------------

class OffsetClock:
    """Real time plus the seconds the test injects: training's own work counts as it is, and
    each step seems to take what the test says."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.monotonic() + self.offset


class StepDelay(keras.callbacks.Callback):
    """Make step n (1-based, counted from this call of fit) take ``seconds(n)`` more on ``clock``."""

    def __init__(self, clock, seconds):
        super().__init__()
        self.clock, self.seconds, self.steps = clock, seconds, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self.clock.offset += self.seconds(self.steps)


def budgeted_train(out_dir, data_dir, budget_s, step_seconds, reserve_s=0.0):
    """train() at 32 px, 4 steps an epoch, 1000 epochs asked, under ``budget_s`` on an OffsetClock."""
    from monet_keras.train.training import train

    clock = OffsetClock()
    run_clock = budget.RunClock(budget_s, clock=clock)
    config = tiny("Os", data_dir=str(data_dir), out_dir=str(out_dir), steps_per_epoch=4, epochs=1000)
    result = train(config, verbose=0, clock=run_clock, reserve_s=reserve_s,
                   callbacks=[StepDelay(clock, step_seconds)])
    return config, result, run_clock


def images_zip_inside(config, result, run_clock):
    """Write and validate images.zip as the notebook does; the run clock's reading after it."""
    from monet_keras.data.source import DataFolder
    from monet_keras.experiments import notebook as nb

    path = nb.write_images_zip(config, DataFolder.find(config.data_dir), result.generator_path)
    with zipfile.ZipFile(path) as archive:
        assert len(archive.namelist()) == 10
    return run_clock.elapsed()


def read_budget_json(run_dir):
    with open(RunFolder(run_dir).budget_json, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def slowed_run(demo_data_dir, tmp_path_factory):
    """21000 s of budget; steps of 1000 s, from the 7th on 10000 s. After epoch 1 (~4000 s) five
    epochs are planned ((21000 - 4000) // 4000 = 4 more); the 7th step (3rd of epoch 2) ends at
    ~16000 s, when a next step of ~10000 s would pass the 21000 s: training stops there. The
    injected times dwarf the real seconds training takes, however loaded the machine."""
    out_dir = tmp_path_factory.mktemp("budget") / "run"
    config, result, run_clock = budgeted_train(out_dir, demo_data_dir, 21000,
                                               lambda step: 1000.0 if step <= 6 else 10000.0)
    return config, result, run_clock, images_zip_inside(config, result, run_clock)


@pytest.mark.slow
def test_slowed_down_run_stops_early_and_still_writes_images_zip_inside_the_budget(slowed_run):
    config, result, run_clock, finished_at = slowed_run
    assert finished_at <= 21000
    history = result.history
    assert [row["epoch"] for row in history] == [1, 2]
    assert [row["steps"] for row in history] == [4, 3]  # the 2nd epoch stopped at its 3rd step
    assert [row["planned_epochs"] for row in history] == [5, 2]
    assert result.planned_epochs == 2 and result.epochs_trained == 2
    record = read_budget_json(config.out_dir)
    assert record["budget_s"] == 21000 and record["epochs_done"] == 2
    assert record["stopped"].startswith("stopped at step 3 of epoch 2")
    assert os.path.basename(RunFolder(config.out_dir).checkpoints_dir) in os.listdir(config.out_dir)


@pytest.mark.slow
def test_resumed_run_plans_only_the_budget_it_has(slowed_run, tmp_path):
    import shutil

    config = slowed_run[0]
    shutil.copytree(config.out_dir, tmp_path / "run")
    # 10000 s now, steps of 1000 s: (10000 - a little) // 4000 = 2 epochs more than the 2 done.
    config, result, run_clock = budgeted_train(tmp_path / "run", config.data_dir, 10000, lambda step: 1000.0)
    assert result.resumed_from == 2 and result.epochs_trained == 2
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert [row["planned_epochs"] for row in result.history[2:]] == [4, 4]
    record = read_budget_json(config.out_dir)
    assert (record["budget_s"], record["planned_epochs"], record["epochs_done"]) == (10000, 4, 4)
    assert images_zip_inside(config, result, run_clock) <= 10000


@pytest.mark.slow
def test_budget_smaller_than_one_step_still_writes_images_zip(slowed_run, tmp_path, caplog):
    import shutil

    config = slowed_run[0]
    shutil.copytree(config.out_dir, tmp_path / "run")
    caplog.set_level(logging.INFO, logger="monet_keras")
    # 5000 s, one step takes 10000 s: the first step runs (it cannot be known before), then it stops.
    config, result, run_clock = budgeted_train(tmp_path / "run", config.data_dir, 5000, lambda step: 10000.0)
    stop = r"stopped at step 1 of epoch 3: the next step \(~1\d{4}\.\d\d s\) would not fit"
    assert re.search(stop, caplog.text)
    assert [row["steps"] for row in result.history] == [4, 3, 1]
    images_zip_inside(config, result, run_clock)
    # No time left at all: no training, a clear message, images.zip from the generator as it is.
    caplog.clear()
    config, result, run_clock = budgeted_train(tmp_path / "run", config.data_dir, 10, lambda step: 0.0,
                                               reserve_s=20)
    assert "the time budget (10s) leaves no time to train" in caplog.text
    assert result.epochs_trained == 0 and len(result.history) == 3
    assert read_budget_json(config.out_dir)["stopped"].startswith("the time budget (10s) leaves no time")
    images_zip_inside(config, result, run_clock)


# --- the notebook under papermill with a budget ---------------------------------------------

NOTEBOOK_BUDGET_S = 150
# Papermill's wall clock also counts what precedes the run clock (kernel start, imports):
# the stated tolerance for the whole execution.
STARTUP_TOLERANCE_S = 60


@pytest.fixture(scope="module")
def budgeted_notebook(tmp_path_factory):
    from monet_keras.cli import main
    from tfrecords_tools.demo import make_demo

    root = tmp_path_factory.mktemp("budget_notebook")
    make_demo(root / "data", n_monet=6, n_photos=10, size=64, seed=0)
    parameters = dict(image_size="64", base_filters="8", epochs="1000", batch_size="1")
    argv = ["experiments", "--data", str(root / "data"), "--out", str(root / "runs"), "--variants", "Os",
            "--time-budget", str(NOTEBOOK_BUDGET_S)]
    for key, value in parameters.items():
        argv += ["-p", key, value]
    assert main(argv) == 0
    return RunFolder(root / "runs" / "Os")


@pytest.mark.slow
def test_notebook_fits_its_time_budget_and_leaves_a_valid_images_zip(budgeted_notebook):
    from monet_keras.submit import zipcheck

    run = budgeted_notebook
    with open(run.result_json, encoding="utf-8") as f:
        result = json.load(f)
    assert result["status"] == "ok"
    assert result["wall_seconds"] <= NOTEBOOK_BUDGET_S + STARTUP_TOLERANCE_S
    with open(run.timing_json, encoding="utf-8") as f:
        timing = json.load(f)
    assert timing["budget_s"] == NOTEBOOK_BUDGET_S and timing["elapsed_s"] <= NOTEBOOK_BUDGET_S
    assert set(timing["phases_s"]) == {"setup and data", "training", "figures", "images.zip", "evaluation"}
    history = run.read_history()
    assert len(history) > 1
    assert 1 < history[-1]["planned_epochs"] < 1000
    assert timing["epochs"] == len(history) == timing["planned_epochs"]
    assert zipcheck.validate_zip(run.images_zip, *zipcheck.count_range(allow_small=True)) == []
