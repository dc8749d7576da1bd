"""``experiments --on kaggle``: one Kaggle kernel per variant, with the real kaggle CLI (2.2.5)
against the local fake Kaggle API (tests/fake_kaggle.py); nothing leaves the machine.

The real CLI takes about a second per call, so these tests keep the calls few: the six-variant
test is a dry run plus one push by hand, the others use two or three variants.
"""

import base64
import csv
import json
import shlex

import pytest

import kaggle_submit
from monet_keras import cli
from monet_keras.experiments import kaggle_batch, notebook_cells
from tests.fake_kaggle import DROP
from tfrecords_tools import kaggle_cli

SLUGS = {"Os": "monet-cyclegan-os", "Us": "monet-cyclegan-us", "Os+Aug": "monet-cyclegan-os-aug",
         "Us+Aug": "monet-cyclegan-us-aug", "Os+DiffAug": "monet-cyclegan-os-diffaug",
         "Us+DiffAug": "monet-cyclegan-us-diffaug"}
FOLDERS = {"Os": "Os", "Us": "Us", "Os+Aug": "Os_Aug", "Us+Aug": "Us_Aug", "Os+DiffAug": "Os_DiffAug",
           "Us+DiffAug": "Us_DiffAug"}
HISTORY = ("epoch,monet_gen_loss,photo_gen_loss,monet_disc_loss,photo_disc_loss,cycle_loss\n"
           "1,2.5,2.25,0.75,0.5,4.0\n2,2.0,1.75,0.625,0.375,3.0\n")


@pytest.fixture
def credentials(home, fake, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", fake.username)
    monkeypatch.setenv("KAGGLE_KEY", fake.key)


def run_outputs(mifid):
    """What a finished kernel leaves in /kaggle/working: four files, two pages of the fake's listing."""
    scores = {"mifid": mifid, "fid": mifid / 2, "kid_mean": 0.0125, "memorization_distance": 0.25,
              "comparable_to_kaggle": True, "extractor": "inception_v3"}
    return {"scores.json": json.dumps(scores).encode(), "history.csv": HISTORY.encode(),
            "images.zip": b"PK\x05\x06" + bytes(18), "samples/epoch_002.png": bytes(range(256))}


def injected(notebook_path):
    """The values papermill's injected-parameters cell sets, and the cells without it."""
    with open(notebook_path, encoding="utf-8") as f:
        cells = json.load(f)["cells"]
    [index] = [i for i, c in enumerate(cells) if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "parameters" in cells[index - 1]["metadata"]["tags"]
    namespace = {}
    exec("".join(cells[index]["source"]), namespace)
    namespace.pop("__builtins__")
    return namespace, cells[:index] + cells[index + 1:]


def no_secrets(fake, *texts):
    basic = base64.b64encode(f"{fake.username}:{fake.key}".encode()).decode()
    for text in texts:
        for secret in (fake.key, fake.token, basic):
            assert secret not in text


def read_rows(runs):
    with open(runs / "results.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_dry_run_writes_six_push_folders_and_prints_runnable_commands(home, fake, tmp_path, capsys,
                                                                       monkeypatch):
    runs = tmp_path / "runs"
    code = cli.main(["experiments", "--on", "kaggle", "--owner", "alice", "--out", str(runs),
                     "-p", "epochs", "3", "-p", "Us:epochs", "8", "-p", "Os+DiffAug:cycle_noise_std", "0.08",
                     "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert fake.requests == []  # no credentials either: nothing asked for them
    expected = ([f"kaggle kernels push -p {runs / 'kernels' / FOLDERS[v]}" for v in SLUGS]
                + [f"kaggle kernels status alice/{SLUGS[v]}" for v in SLUGS]
                + [f"kaggle kernels output alice/{SLUGS[v]} -p {runs / FOLDERS[v]} -o" for v in SLUGS])
    note = f"dry run: push folders written under {runs / 'kernels'}; nothing sent to Kaggle"
    assert out.splitlines() == [note, *expected]
    plain_cells = json.loads(notebook_cells.build())["cells"]
    for name, slug in SLUGS.items():
        folder = runs / "kernels" / FOLDERS[name]
        metadata = json.loads((folder / "kernel-metadata.json").read_text())
        assert metadata["id"] == f"alice/{slug}" and metadata["title"] == slug.replace("-", " ")
        assert metadata["code_file"] == "monet_cyclegan.ipynb"
        assert metadata["machine_shape"] == "NvidiaTeslaT4"
        assert metadata["enable_internet"] is False and metadata["enable_gpu"] is True
        assert metadata["dataset_sources"] == ["alice/monet-keras"]
        assert metadata["competition_sources"] == ["gan-getting-started"] and "docker_image" not in metadata
        values, cells = injected(folder / "monet_cyclegan.ipynb")
        want = {"variant": name, "epochs": 8 if name == "Us" else 3}
        if name == "Os+DiffAug":
            want["cycle_noise_std"] = 0.08
        assert values == want
        assert ["".join(c["source"]) for c in cells] == ["".join(c["source"]) for c in plain_cells]

    # the printed push command, run by hand with the real CLI, is accepted as it is
    monkeypatch.setenv("KAGGLE_USERNAME", fake.username)
    monkeypatch.setenv("KAGGLE_KEY", fake.key)
    args = shlex.split(expected[-1 - 2 * len(SLUGS)])[1:]  # the Us+DiffAug push
    kaggle_cli.run_kaggle(args, kaggle_cli.find_credentials())
    [kernel] = fake.kernels
    assert kernel["slug"] == "alice/monet-cyclegan-us-diffaug" and kernel["machineShape"] == "NvidiaTeslaT4"
    assert kernel["datasetDataSources"] == ["alice/monet-keras"] and kernel["enableInternet"] is False
    assert kernel["competitionDataSources"] == ["gan-getting-started"] and not kernel.get("dockerImage")
    setup = json.loads(kernel["text"])["cells"]
    assert any("monet_keras-*.whl" in cell["source"] for cell in setup)  # installs the kit's wheel
    assert 'variant = "Us+DiffAug"' in "".join(cell["source"] for cell in setup)


def test_parallel_kernels_a_failure_the_results_and_the_best_submitted(home, fake, credentials, tmp_path,
                                                                      capsys):
    """Three variants, two at a time: Us ends in error (reported with its log), the others complete;
    their outputs (two pages each) make the results table; code --from submits the best one."""
    fake.kernel_scripts = {"alice/monet-cyclegan-os": ["running", "complete"],
                           "alice/monet-cyclegan-us": ["error"],
                           "alice/monet-cyclegan-os-aug": ["queued", "complete"]}
    fake.kernel_failures["alice/monet-cyclegan-us"] = "Your notebook tried to allocate more memory"
    fake.kernel_logs["alice/monet-cyclegan-us"] = "starting\nepoch 1\nTraceback (most recent call last)\n" \
                                                  "ValueError: boom\n"
    fake.kernel_outputs = {"alice/monet-cyclegan-os": run_outputs(41.5),
                           "alice/monet-cyclegan-os-aug": run_outputs(38.25)}
    runs = tmp_path / "runs"
    code = cli.main(["experiments", "--on", "kaggle", "--owner", "alice", "--out", str(runs),
                     "--variants", "Os,Us,Os+Aug", "-p", "epochs", "2", "--max-parallel", "2",
                     "--poll-interval", "0"])
    out, err = capsys.readouterr()
    no_secrets(fake, out, err, (runs / kaggle_batch.STATE_FILE).read_text())
    assert code == 1
    assert err.splitlines() == ["failed: Us (alice/monet-cyclegan-us): Kaggle kernel error: "
                                "Your notebook tried to allocate more memory"]
    assert [k["slug"] for k in fake.kernels] == ["alice/monet-cyclegan-os", "alice/monet-cyclegan-us",
                                                 "alice/monet-cyclegan-os-aug"]
    assert fake.max_active == 2
    for kernel, name in zip(fake.kernels, ("Os", "Us", "Os+Aug"), strict=True):
        assert f'variant = "{name}"\nepochs = 2\n' in json.loads(kernel["text"])["cells"][2]["source"]
    polled = [(call.json()["kernelSlug"], call.json()["versionLabel"])
              for call in fake.calls("GetKernelSessionStatus")]
    assert sorted(set(polled)) == [("monet-cyclegan-os", "v7"), ("monet-cyclegan-os-aug", "v9"),
                                   ("monet-cyclegan-us", "v8")]
    pages = [c.json()["kernelSlug"] for c in fake.calls("ListKernelSessionOutput")]
    assert sorted(pages) == ["monet-cyclegan-os"] * 2 + ["monet-cyclegan-os-aug"] * 2 + ["monet-cyclegan-us"]

    for name, mifid in (("Os", 41.5), ("Os_Aug", 38.25)):
        for file, data in run_outputs(mifid).items():
            assert (runs / name / file).read_bytes() == data, file
    state = json.loads((runs / kaggle_batch.STATE_FILE).read_text())["variants"]
    assert {name: (s["version"], s["status"]) for name, s in state.items()} == {
        "Os": (7, "complete"), "Us": (8, "error"), "Os+Aug": (9, "complete")}
    assert state["Us"]["log_tail"].endswith("Traceback (most recent call last)\nValueError: boom")

    rows = {row["variant"]: row for row in read_rows(runs)}
    assert list(rows) == ["Os", "Us", "Os+Aug"]
    assert [rows[n]["status"] for n in rows] == ["ok", "failed", "ok"]
    assert float(rows["Os"]["mifid"]) == 41.5 and float(rows["Os+Aug"]["fid"]) == 38.25 / 2
    assert float(rows["Os"]["cycle_loss"]) == 3.0 and rows["Os"]["epochs"] == "2"
    assert "allocate more memory" in rows["Us"]["error"] and "ValueError: boom" in rows["Us"]["error"]
    assert (runs / "results.md").is_file() and (runs / "results.png").is_file()

    code = kaggle_submit.main(["code", "--from", str(runs), "-m", "best of three"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "best variant" in out and "Os+Aug (MiFID estimate 38.250)" in out
    assert fake.code_submissions == [{"competitionName": "gan-getting-started", "kernelOwner": "alice",
                                      "kernelSlug": "monet-cyclegan-os-aug", "kernelVersion": 9,
                                      "fileName": "images.zip", "submissionDescription": "best of three"}]
    assert kaggle_submit.main(["code", "--from", str(runs), "--kernel", "alice/x", "-m", "m"]) == 2
    assert "either --from RUNS_DIR or --kernel" in capsys.readouterr().err


def test_a_rerun_after_an_interruption_resumes_without_pushing(home, fake, credentials, tmp_path):
    """Ctrl-C while waiting: the rerun polls the versions already pushed, retries a dropped
    connection, backs off while nothing changes, and downloads; a third run does nothing; with
    force, both are pushed anew."""
    fake.kernel_scripts = {"alice/monet-cyclegan-os": ["queued"] * 4 + ["complete"],
                           "alice/monet-cyclegan-us": ["queued", "complete"]}
    fake.kernel_outputs = {"alice/monet-cyclegan-os": run_outputs(40.0),
                           "alice/monet-cyclegan-us": run_outputs(45.0)}
    runs = tmp_path / "runs"

    def interrupt(seconds):
        raise KeyboardInterrupt

    batch = dict(runs_dir=runs, variants=["Os", "Us"], owner="alice", parameters={"epochs": "2"},
                 max_parallel=6, poll_seconds=60.0)
    with pytest.raises(KeyboardInterrupt):
        kaggle_batch.run_on_kaggle(**batch, sleep=interrupt)
    state = json.loads((runs / kaggle_batch.STATE_FILE).read_text())["variants"]
    assert {name: (s["version"], s["status"]) for name, s in state.items()} == {
        "Os": (7, "queued"), "Us": (8, "queued")}
    assert not (runs / ".lock").exists() and not (runs / "results.csv").exists()

    fake.fail_first["GetKernelSessionStatus"] = [(DROP, None)]
    slept = []
    outcomes = kaggle_batch.run_on_kaggle(**batch, sleep=slept.append)
    assert len(fake.kernels) == 2  # nothing pushed again
    assert slept == [5.0, 60.0, 60.0, 120.0]  # a retry; then each round, doubling while nothing ends
    assert {name: record["status"] for name, record in outcomes.items()} == {"Os": "complete",
                                                                            "Us": "complete"}
    assert [(row["variant"], row["status"], float(row["mifid"])) for row in read_rows(runs)] == [
        ("Os", "ok", 40.0), ("Us", "ok", 45.0)]

    before = len(fake.requests)
    kaggle_batch.run_on_kaggle(**batch, sleep=slept.append)
    assert len(fake.requests) == before and len(read_rows(runs)) == 2

    kaggle_batch.run_on_kaggle(**batch, sleep=slept.append, force=True)  # pushed anew, run folders emptied
    state = json.loads((runs / kaggle_batch.STATE_FILE).read_text())["variants"]
    assert len(fake.kernels) == 4 and [state[name]["version"] for name in ("Os", "Us")] == [9, 10]


def test_bad_input_is_one_line(home, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    kaggle = ["--on", "kaggle", "--out", runs]
    for argv, message in (
            (kaggle, "--on kaggle needs --owner USER"),
            ([*kaggle, "--owner", "alice", "--data", "d"], "--data is for --on local"),
            (["--out", runs, "--owner", "alice", "--data", "d"], "--owner is for --on kaggle"),
            ([*kaggle, "--owner", "a/b"], "bad --owner 'a/b'"),
            ([*kaggle, "--owner", "alice", "-p", "epochs", "x", "--dry-run"], "epochs")):
        assert cli.main(["experiments", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert kaggle_batch.parse_status("KernelWorkerStatus.COMPLETE") == "complete"
    assert kaggle_batch.parse_status(" Cancel_Acknowledged") == "cancel_acknowledged"
    assert kaggle_batch.status_of('alice/k has status "KernelWorkerStatus.ERROR"\n'
                                  'Failure message: "out of memory"\n') == ("error", "out of memory")
