"""``python -m tfrecords_tools download``: safe extraction, count checks, and the real kaggle CLI
downloading from the local fake Kaggle server (tests/fake_kaggle.py)."""

import base64
import json
import os
import stat
import subprocess
import sys
import zipfile

import pytest

from monet_keras.errors import MonetKerasError
from tests.fake_kaggle import FakeKaggle
from tests.kaggle_fixtures import write_kaggle_folder
from tfrecords_tools.download import extract

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"monet": 3, "photo": 5}


def _zip_folder(folder, zip_path):
    with zipfile.ZipFile(zip_path, "w") as archive:
        for root, _, files in os.walk(folder):
            for name in sorted(files):
                full = os.path.join(root, name)
                archive.write(full, os.path.relpath(full, folder))
    return zip_path


@pytest.fixture(scope="module")
def data_zip(tmp_path_factory):
    """A small Kaggle-layout zip: 3 Monet and 5 photos at 32 px, as TFRecords and as JPEGs."""
    root = tmp_path_factory.mktemp("source")
    write_kaggle_folder(str(root / "data"), SMALL["monet"], SMALL["photo"], size=32, kind="tfrecord",
                        shards=2)
    write_kaggle_folder(str(root / "data"), SMALL["monet"], SMALL["photo"], size=32, kind="jpg")
    return _zip_folder(root / "data", root / "gan-getting-started.zip")


def _listing(folder):
    return sorted(os.path.relpath(os.path.join(r, f), folder)
                  for r, _, files in os.walk(folder) for f in files)


@pytest.mark.parametrize("member, why", [
    ("../evil.txt", "'..' in its path"),
    ("monet_jpg/../../evil.txt", "'..' in its path"),
    ("/abs/path.txt", "an absolute path"),
    ("C:/evil.txt", "a drive letter"),
    ("..\\evil.txt", "a backslash in its path"),
    ("link", "a symbolic link"),
])
def test_unsafe_member_is_refused_and_nothing_is_written(data_zip, tmp_path, member, why):
    crafted = tmp_path / "crafted.zip"
    with zipfile.ZipFile(data_zip) as good, zipfile.ZipFile(crafted, "w") as archive:
        for info in good.infolist():
            archive.writestr(info, good.read(info))
        info = zipfile.ZipInfo(member)
        if member == "link":
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc")
        else:
            archive.writestr(info, b"evil")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(MonetKerasError) as error:
        extract(crafted, work / "data", expected=SMALL, size=32)
    message = str(error.value)
    assert "\n" not in message and f"member {member!r}" in message and why in message
    assert "nothing extracted" in message
    assert os.listdir(work) == []  # no output folder, no temporary one
    assert sorted(os.listdir(tmp_path)) == ["crafted.zip", "work"]  # nothing landed next to it


def test_good_zip_extracts_and_verifies(data_zip, tmp_path):
    out = tmp_path / "data"
    totals = extract(data_zip, out, expected=SMALL, size=32)
    assert totals == {("monet", "tfrec"): 3, ("monet", "jpg"): 3, ("photo", "tfrec"): 5, ("photo", "jpg"): 5}
    with zipfile.ZipFile(data_zip) as archive:
        assert _listing(out) == sorted(archive.namelist())
        for name in archive.namelist():
            assert (out / name).read_bytes() == archive.read(name)
    assert os.listdir(tmp_path) == ["data"]


def test_wrong_counts_and_bad_zip_are_reported_and_install_nothing(data_zip, tmp_path):
    with pytest.raises(MonetKerasError, match=r"a/photo_jpg: 5 photo images, expected 7038 \(incomplete"):
        extract(data_zip, tmp_path / "a", expected={"monet": 3, "photo": 7038}, size=32)
    with pytest.raises(MonetKerasError, match=r"monet_\w+: 3 monet images, expected 300"):
        extract(data_zip, tmp_path / "b", size=32)  # the Kaggle counts by default
    photos_only = tmp_path / "photos_only.zip"
    with zipfile.ZipFile(data_zip) as good, zipfile.ZipFile(photos_only, "w") as archive:
        for info in good.infolist():
            if info.filename.startswith("photo_"):
                archive.writestr(info, good.read(info))
    with pytest.raises(MonetKerasError, match=r"c: no monet images \(monet_tfrec/ or monet_jpg/ expected\)"):
        extract(photos_only, tmp_path / "c", expected=SMALL, size=32)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(data_zip.read_bytes()[: data_zip.stat().st_size // 2])
    with pytest.raises(MonetKerasError, match="truncated.zip: not a readable zip archive"):
        extract(truncated, tmp_path / "d", expected=SMALL, size=32)
    assert sorted(os.listdir(tmp_path)) == ["photos_only.zip", "truncated.zip"]


def test_existing_folder_is_kept_unless_force(data_zip, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(MonetKerasError, match="not empty"):
        extract(data_zip, out, expected=SMALL, size=32)
    with pytest.raises(MonetKerasError, match="expected 7038"):
        extract(data_zip, out, force=True, expected={"monet": 3, "photo": 7038}, size=32)
    assert os.listdir(out) == ["mine.txt"]  # a failed replacement leaves the old folder
    extract(data_zip, out, force=True, expected=SMALL, size=32)
    assert "mine.txt" not in _listing(out) and "photo_jpg/photo0004.jpg" in _listing(out)


def test_download_end_to_end_with_the_kaggle_cli(data_zip, tmp_path):
    """The real kaggle CLI asks DownloadDataFiles (answered 503 once: retried), follows the redirect
    to the file, and the data ends verified in DIR; no secret in the output."""
    with FakeKaggle() as fake:
        fake.data_files["gan-getting-started"] = data_zip.read_bytes()
        fake.fail_first["DownloadDataFiles"] = [(503, None)]
        home = tmp_path / "home"
        (home / ".kaggle").mkdir(parents=True)
        config = home / ".kaggle" / "kaggle.json"
        config.write_text(json.dumps({"username": fake.username, "key": fake.key}))
        config.chmod(0o600)
        env = fake.env(home, os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
        work = tmp_path / "work"
        command = [sys.executable, "-m", "tfrecords_tools", "download", str(work / "data"), "--monet", "3",
                   "--photos", "5", "--size", "32", "--retry-delay", "0"]
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert [r.endpoint for r in fake.requests] == ["DownloadDataFiles", "DownloadDataFiles", "files"]
        basic = base64.b64encode(f"{fake.username}:{fake.key}".encode()).decode()
        for secret in (fake.key, basic):
            assert secret not in proc.stdout + proc.stderr
        assert "attempt 1 of 3 failed: HTTP 503" in proc.stdout
        assert proc.stdout.rstrip().endswith(
            "data: verified, monet 3 in jpg; monet 3 in tfrec; photo 5 in jpg; photo 5 in tfrec")
        with zipfile.ZipFile(data_zip) as archive:
            assert _listing(work / "data") == sorted(archive.namelist())
        assert os.listdir(work) == ["data"]  # the downloaded zip and temporary folders are gone

        # an unknown competition: the CLI's 404 is one error line, exit 1, nothing written
        proc = subprocess.run([*command[:4], str(work / "other"), "--competition", "nope"],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1
        assert proc.stderr.startswith("error: kaggle competitions download failed:")
        assert os.listdir(work) == ["data"]
