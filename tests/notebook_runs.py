"""One batch run shared by tests/test_notebook.py and tests/test_experiments.py (papermill is slow).

``experiment_runs`` runs ``python -m monet_keras experiments`` in-process once per session on a
tiny demo data set: Os in full (evaluation and images.zip), Us without evaluation and
submission, Os+Aug made to fail inside the notebook (more Monet paintings held out than exist),
Us+Aug with a value ExperimentConfig rejects before anything runs, and the kit's CUT in full and
Best without evaluation and submission.
"""

import dataclasses
import os

import pytest

TINY = dict(image_size="32", base_filters="8", epochs="1", steps_per_epoch="2", batch_size="1")
VARIANTS = ("Os", "Us", "Os+Aug", "Us+Aug", "CUT", "Best")


@dataclasses.dataclass
class Runs:
    data_dir: str
    runs_dir: str
    exit_code: int

    def run_dir(self, name):
        return os.path.join(self.runs_dir, name)

    def argv(self, variants=VARIANTS):
        return runner_argv(self.data_dir, self.runs_dir, variants)


def runner_argv(data_dir, runs_dir, variants=VARIANTS):
    argv = ["experiments", "--data", data_dir, "--out", runs_dir, "--variants", ",".join(variants)]
    for key, value in TINY.items():
        argv += ["-p", key, value]
    per_variant = [("Us:evaluate", "false"), ("Us:make_submission", "false"),
                   ("Best:evaluate", "false"), ("Best:make_submission", "false"),
                   ("Os+Aug:holdout_monet", "100"), ("Us+Aug:image_size", "48")]
    for key, value in per_variant:
        if key.split(":")[0] in variants:
            argv += ["-p", key, value]
    return argv


@pytest.fixture(scope="session")
def experiment_runs(tmp_path_factory):
    from monet_keras.cli import main
    from tfrecords_tools.demo import make_demo

    root = tmp_path_factory.mktemp("experiments")
    data_dir = str(root / "data")
    make_demo(data_dir, n_monet=6, n_photos=10, size=32, seed=0)
    runs_dir = str(root / "runs")
    return Runs(data_dir, runs_dir, main(runner_argv(data_dir, runs_dir)))
