"""kaggle_submit.py end to end: the real kaggle CLI (2.2.5) against a local fake Kaggle API.

Every test runs with HOME and KAGGLE_CONFIG_DIR in a temporary folder and all HTTP(S) routed
to :class:`FakeKaggle` on 127.0.0.1 (see tests/fake_kaggle.py), so no real credentials are
read and nothing leaves the machine.
"""

import base64
import io
import json
import os
import shlex
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import kaggle_submit
from monet_keras.errors import MonetKerasError
from tests.fake_kaggle import DROP
from tfrecords_tools import kaggle_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                       "source": ["import monet_keras\n", "print('hello')"]}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _kaggle_json(home, fake):
    path = home / ".kaggle" / "kaggle.json"
    path.write_text(json.dumps({"username": fake.username, "key": fake.key}))
    path.chmod(0o600)
    return path


@pytest.fixture
def images_zip(tmp_path):
    """A flat zip of three 256x256 RGB JPEGs (valid with --allow-small)."""
    path = tmp_path / "images.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(3):
            buffer = io.BytesIO()
            pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
            archive.writestr(f"photo{i}.jpg", buffer.getvalue())
    return path


def _no_secrets(text, fake):
    basic = base64.b64encode(f"{fake.username}:{fake.key}".encode()).decode()
    for secret in (fake.key, fake.token, basic):
        assert secret not in text


def _run(capsys, fake, *argv):
    """kaggle_submit.main(argv) -> (exit code, stdout, stderr), checking no secret was printed."""
    code = kaggle_submit.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    _no_secrets(out + err, fake)
    return code, out, err


# --- file submission ------------------------------------------------------------------------

def test_file_submission_uploads_the_exact_bytes(home, fake, images_zip, capsys):
    config = _kaggle_json(home, fake)
    code, out, err = _run(capsys, fake, "file", "--zip", images_zip, "-m", "Os, 25 epochs", "--allow-small")
    assert code == 0, err
    assert [r.endpoint for r in fake.requests] == [
        "StartSubmissionUpload", "upload", "CreateSubmission", "GetSubmissionLimits"]
    start = fake.calls("StartSubmissionUpload")[0].json()
    assert start["competitionName"] == "gan-getting-started" and start["fileName"] == "images.zip"
    assert start["contentLength"] == images_zip.stat().st_size
    assert list(fake.uploads.values()) == [images_zip.read_bytes()]
    token = next(iter(fake.uploads))
    assert fake.submissions == [{"competitionName": "gan-getting-started", "blobFileTokens": token,
                                 "submissionDescription": "Os, 25 epochs"}]
    assert f"(credentials: {config})" in out and "Submission ref: 1001" in out
    assert "--allow-small" in out and "Kaggle itself requires 7,000-10,000" in out


def test_script_with_an_access_token(home, fake, images_zip):
    """As a program, with KAGGLE_API_TOKEN: the CLI checks the token, then sends it as a Bearer token."""
    env = dict(os.environ, KAGGLE_API_TOKEN=fake.token)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "kaggle_submit.py"), "file",
                           "--zip", str(images_zip), "-m", "token run", "--allow-small"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    _no_secrets(proc.stdout + proc.stderr, fake)
    assert "credentials: the KAGGLE_API_TOKEN environment variable" in proc.stdout
    assert fake.calls("IntrospectToken")
    assert fake.calls("CreateSubmission")[0].headers["Authorization"] == f"Bearer {fake.token}"
    assert list(fake.uploads.values()) == [images_zip.read_bytes()]


def test_dry_run_validates_and_uploads_nothing(home, fake, images_zip, capsys):
    _kaggle_json(home, fake)
    code, out, _ = _run(capsys, fake, "file", "--zip", images_zip, "-m", "my run", "--allow-small",
                        "--dry-run")
    assert code == 0
    expected = shlex.join(["kaggle", "competitions", "submit", "-c", "gan-getting-started",
                           "-f", str(images_zip), "-m", "my run"])
    assert f"would run: {expected}" in out and "ok: " in out
    assert fake.requests == []


def test_invalid_zip_is_never_uploaded(home, fake, images_zip, capsys):
    _kaggle_json(home, fake)
    code, out, _ = _run(capsys, fake, "file", "--zip", images_zip, "-m", "x")  # 3 images, no --allow-small
    assert code == 1 and "problem: " in out and "3 images; Kaggle needs 7,000 to 10,000" in out
    assert fake.requests == []


def test_build_then_submit(home, fake, tmp_path, capsys):
    import keras

    from monet_keras.model.networks import build_generator
    photos = tmp_path / "photo_jpg_folder"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (256, 256), (40 * i, 90, 200)).save(photos / f"p{i}.jpg", quality=95)
    generator = tmp_path / "g.keras"
    keras.saving.save_model(build_generator(32, base_filters=8, seed=0), generator)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    _kaggle_json(home, fake)
    out_zip = tmp_path / "built.zip"
    argv = ("file", "--generator", generator, "--photos", photos, "--zip", out_zip, "-m", "built",
            "--allow-small")
    code, out, err = _run(capsys, fake, *argv)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: bad photo data: {photos / 'broken.jpg'}: ")
    assert not out_zip.exists() and fake.requests == []
    code, out, err = _run(capsys, fake, *argv, "--skip-corrupt")
    assert code == 0, err
    assert "skipping 1 unreadable or odd photo record(s)" in out
    with zipfile.ZipFile(out_zip) as archive:
        assert sorted(archive.namelist()) == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert list(fake.uploads.values()) == [out_zip.read_bytes()]


# --- failures -------------------------------------------------------------------------------

def test_missing_credentials(home, fake, images_zip, capsys):
    code, out, err = _run(capsys, fake, "file", "--zip", images_zip, "-m", "x", "--allow-small")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: no Kaggle credentials: set KAGGLE_API_TOKEN")
    assert str(home / ".kaggle") in err
    assert fake.requests == []


def test_incomplete_credentials_name_the_missing_one(home, fake, images_zip, capsys, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", fake.username)
    code, _, err = _run(capsys, fake, "file", "--zip", images_zip, "-m", "x", "--allow-small")
    assert code == 2 and "KAGGLE_KEY" in err and "is missing" in err and err.count("\n") == 1


@pytest.mark.parametrize("endpoint, status, message, expected, runs", [
    ("upload", 403, None, "Could not submit to competition: the upload of the file was refused or failed", 1),
    ("upload", 500, None, "Could not submit to competition: the upload of the file was refused or failed", 1),
    ("CreateSubmission", 400, "Submission limit reached", "Submission limit reached", 1),
    ("CreateSubmission", 503, None, "503 Server Error", 1),  # may have been created: never repeated
    ("StartSubmissionUpload", 500, None,
     "500 Server Error: Internal Server Error for url: http://localhost/api/v1/"
     "competitions.CompetitionApiService/StartSubmissionUpload "
     "(a problem on Kaggle's side; try again later)", 1),
    ("upload", 503, None, "Could not submit to competition: the upload of the file was refused or failed "
                          "(still failing after 3 attempts)", 3),
])
def test_rejections_and_server_errors_give_one_line(home, fake, images_zip, capsys, endpoint, status, message,
                                                    expected, runs):
    """Each failure ends with one line and nothing submitted; only transient ones (502-504, dropped
    connections) before CreateSubmission are run again, --attempts times in all."""
    _kaggle_json(home, fake)
    fake.fail[endpoint] = (status, message)
    code, out, err = _run(capsys, fake, "file", "--zip", images_zip, "-m", "x", "--allow-small",
                          "--retry-delay", "0")
    assert code == 1
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: kaggle competitions submit failed: {expected}"), err
    assert len(fake.calls("StartSubmissionUpload")) == runs and out.count("running: kaggle") == runs
    assert fake.submissions == []
    if endpoint != "upload":
        assert len(fake.calls(endpoint)) == runs


@pytest.mark.parametrize("endpoint, status, reason", [
    ("upload", 503, "HTTP 503 on PUT /upload/blob1"),
    ("upload", 502, "HTTP 502 on PUT /upload/blob1"),
    ("StartSubmissionUpload", 504, "HTTP 504"),
    ("StartSubmissionUpload", DROP, "connection lost"),
])
def test_transient_failure_is_retried_then_succeeds(home, fake, images_zip, capsys, endpoint, status, reason):
    """The CLI does not retry a failed upload itself; kaggle_submit runs the whole submission again."""
    _kaggle_json(home, fake)
    fake.fail_first[endpoint] = [(status, None)]
    code, out, err = _run(capsys, fake, "file", "--zip", images_zip, "-m", "retried", "--allow-small",
                          "--retry-delay", "0")
    assert code == 0 and err == ""
    assert f"attempt 1 of 3 failed: {reason}" in out and "trying again in 0 s" in out
    assert out.count("running: kaggle") == 2
    assert [r.endpoint for r in fake.requests if r.endpoint != "upload"] == [
        "StartSubmissionUpload", "StartSubmissionUpload", "CreateSubmission", "GetSubmissionLimits"]
    assert list(fake.uploads.values()) == [images_zip.read_bytes()]
    [submission] = fake.submissions
    assert submission["blobFileTokens"] in fake.uploads and submission["submissionDescription"] == "retried"


def test_attempts_and_delay_options(home, fake, images_zip, capsys):
    _kaggle_json(home, fake)
    fake.fail["upload"] = (503, None)
    code, out, err = _run(capsys, fake, "file", "--zip", images_zip, "-m", "x", "--allow-small",
                          "--attempts", "1")
    assert code == 1 and "trying again" not in out and "still failing" not in err
    assert len(fake.calls("StartSubmissionUpload")) == 1
    assert kaggle_cli.retry_delays(4, 5.0) == [5.0, 10.0, 20.0] and kaggle_cli.retry_delays(1, 5.0) == []
    for bad in (("--attempts", "0"), ("--retry-delay", "-1")):
        with pytest.raises(SystemExit) as exit_info:
            kaggle_submit.main(["file", "--zip", str(images_zip), "-m", "x", *bad])
        assert exit_info.value.code == 2


def test_no_secret_in_any_output_or_file(home, fake, images_zip, tmp_path, capsys, monkeypatch):
    """Key, token and the Basic auth header never appear in stdout, stderr or any file written,
    through a retried upload, a refused one, a dry run and a kernel push (kaggle_upload/)."""
    monkeypatch.setenv("KAGGLE_USERNAME", fake.username)
    monkeypatch.setenv("KAGGLE_KEY", fake.key)
    monkeypatch.setenv("KAGGLE_API_TOKEN", fake.token)
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps(NOTEBOOK))
    fake.fail_first["upload"] = [(503, "bad gateway")]
    fake.fail_first["StartSubmissionUpload"] = [(401, "Unauthenticated"), (DROP, None)]
    runs = [("file", "--zip", images_zip, "-m", "a", "--allow-small", "--retry-delay", "0"),
            ("file", "--zip", images_zip, "-m", "b", "--allow-small", "--retry-delay", "0"),
            ("file", "--zip", images_zip, "-m", "c", "--allow-small", "--dry-run"),
            ("push", "--kernel", "monet-cyclegan", "--notebook", notebook)]
    for argv in runs:
        _run(capsys, fake, *argv)  # checks stdout and stderr
    assert (tmp_path / "kaggle_upload" / "kernel-metadata.json").is_file()
    basic = base64.b64encode(f"{fake.username}:{fake.key}".encode())
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 3
    for path in written:
        data = path.read_bytes()
        for secret in (fake.key.encode(), fake.token.encode(), basic):
            assert secret not in data, path


def test_wrong_key_is_reported_as_refused_credentials(home, fake, images_zip, capsys, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", fake.username)
    monkeypatch.setenv("KAGGLE_KEY", "not-the-key-0000")
    code, _, err = _run(capsys, fake, "file", "--zip", images_zip, "-m", "x", "--allow-small")
    assert code == 1 and "not-the-key-0000" not in err
    assert err == ("error: kaggle competitions submit failed: Kaggle did not accept the credentials from "
                   "KAGGLE_USERNAME and KAGGLE_KEY environment variable(s)\n")


# --- notebook (code) submission -------------------------------------------------------------

def test_push_then_code_submission(home, fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", fake.username)
    monkeypatch.setenv("KAGGLE_KEY", fake.key)
    notebook = tmp_path / "monet_cyclegan.ipynb"
    notebook.write_text(json.dumps(NOTEBOOK))
    folder = tmp_path / "upload"
    code, out, err = _run(capsys, fake, "push", "--kernel", "monet-cyclegan", "--notebook", notebook,
                          "--folder", folder, "--accelerator", "tpu")
    assert code == 0, err
    metadata = json.loads((folder / "kernel-metadata.json").read_text())
    assert metadata == {
        "id": "alice/monet-cyclegan", "title": "monet cyclegan", "code_file": "monet_cyclegan.ipynb",
        "language": "python", "kernel_type": "notebook", "is_private": True, "enable_gpu": False,
        "enable_tpu": True, "enable_internet": False, "dataset_sources": ["alice/monet-keras"],
        "competition_sources": ["gan-getting-started"], "kernel_sources": [], "model_sources": [],
        "machine_shape": "TpuV5E8"}
    [kernel] = fake.kernels
    assert kernel["slug"] == "alice/monet-cyclegan" and kernel["machineShape"] == "TpuV5E8"
    assert kernel["enableInternet"] is False and kernel["enableTpu"] is True
    assert kernel["competitionDataSources"] == ["gan-getting-started"]
    assert kernel["datasetDataSources"] == ["alice/monet-keras"]
    assert json.loads(kernel["text"])["cells"][0]["source"] == "import monet_keras\nprint('hello')"
    assert "version 7" in out and "kaggle_submit.py code --kernel alice/monet-cyclegan --version 7" in out

    code, out, err = _run(capsys, fake, "code", "--kernel", "alice/monet-cyclegan", "--version", "7",
                          "-m", "Os notebook")
    assert code == 0, err
    assert fake.code_submissions == [{"competitionName": "gan-getting-started", "kernelOwner": "alice",
                                      "kernelSlug": "monet-cyclegan", "kernelVersion": 7,
                                      "fileName": "images.zip", "submissionDescription": "Os notebook"}]
    assert fake.uploads == {}


def test_code_submission_dry_run_and_refused_push(home, fake, tmp_path, capsys):
    _kaggle_json(home, fake)
    code, out, _ = _run(capsys, fake, "code", "--kernel", "alice/monet-cyclegan", "--version", "3",
                        "-m", "v3", "--dry-run")
    assert code == 0 and fake.requests == []
    assert ("would run: kaggle competitions submit -c gan-getting-started -k alice/monet-cyclegan -v 3 "
            "-f images.zip -m v3") in out
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps(NOTEBOOK))
    fake.kernel_error = "Notebook title is already in use"
    code, _, err = _run(capsys, fake, "push", "--kernel", "monet-cyclegan", "--notebook", notebook,
                        "--folder", tmp_path / "up")
    assert code == 1
    assert err == "error: kaggle kernels push failed: Kernel push error: Notebook title is already in use\n"


# --- credential lookup, as kaggle 2.2.5 does it ----------------------------------------------

def test_find_credentials_sources(tmp_path):
    home = tmp_path
    env = {"HOME": str(home)}
    with pytest.raises(MonetKerasError, match="no Kaggle credentials"):
        kaggle_cli.find_credentials(env)
    # without ~/.kaggle, Linux falls back to $XDG_CONFIG_HOME/kaggle (or ~/.config/kaggle)
    xdg = home / ".config" / "kaggle"
    xdg.mkdir(parents=True)
    (xdg / "kaggle.json").write_text(json.dumps({"username": "bob", "key": "abc"}))
    found = kaggle_cli.find_credentials(env)
    assert found.username == "bob" and found.source == str(xdg / "kaggle.json") and "abc" in found.secrets
    # KAGGLE_CONFIG_DIR wins over both; KAGGLE_KEY overrides the file's key
    other = tmp_path / "cfg"
    other.mkdir()
    (other / "kaggle.json").write_text(json.dumps({"username": "carol", "key": "def"}))
    found = kaggle_cli.find_credentials({**env, "KAGGLE_CONFIG_DIR": str(other), "KAGGLE_KEY": "ghi"})
    assert found.username == "carol" and "ghi" in found.secrets and "def" not in found.secrets
    assert found.source == f"KAGGLE_KEY environment variable(s) with {other / 'kaggle.json'}"
    # an access token file comes first
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "access_token").write_text("tok123\n")
    found = kaggle_cli.find_credentials(env)
    assert found.source == str(home / ".kaggle" / "access_token") and found.secrets[0] == "tok123"
    assert all("tok123" not in text for text in (found.source, str(found.username)))


def test_redact_masks_every_secret():
    assert kaggle_cli.redact("Authorization: Basic QUJD key=abc", ("abc", "QUJD")) == \
        "Authorization: Basic *** key=***"
