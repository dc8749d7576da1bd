"""tfrecords_tools: schema reader/writer, scanning, demo data, conversions and the CLI.

Expected values come from independent computations: TensorFlow's own TFRecord reader and
JPEG decoder, PIL, directory listings and numpy statistics.
"""

import io
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from monet_keras.errors import MonetKerasError
from tests.conftest import DEMO_COUNTS, DEMO_SIZE
from tfrecords_tools import cli, schema
from tfrecords_tools.convert import from_jpg, to_jpg
from tfrecords_tools.demo import demo_image, demo_pairs, make_demo
from tfrecords_tools.records import iter_records, write_shards
from tfrecords_tools.scan import require_clean, scan

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARD_RE = re.compile(r"^(monet|photo)(\d\d)-(\d+)\.tfrec$")


def jpeg(size=DEMO_SIZE, mode="RGB", fmt="JPEG", seed=0):
    """Bytes of a random image encoded by PIL."""
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else None
    shape = (size, size, channels) if channels else (size, size)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buffer, format=fmt)
    return buffer.getvalue()


def tf_records(path):
    """Every record of a TFRecord file, read by TensorFlow's reader and parser."""
    out = []
    for raw in tf.data.TFRecordDataset(str(path)):
        parsed = schema.parse_example(raw)
        out.append({k: v.numpy() for k, v in parsed.items()})
    return out


def run_cli(*args):
    """The CLI as a user runs it: a fresh ``python -m tfrecords_tools`` process."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "tfrecords_tools", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def write_raw(path, payloads):
    """A TFRecord file holding exactly ``payloads`` (bytes) as records."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for payload in payloads:
            writer.write(payload)
    return path


# --- schema and records --------------------------------------------------------------------

def test_shard_sizes_match_kaggle_counts():
    assert schema.shard_sizes(300, 5) == [60] * 5
    assert schema.shard_sizes(7038, 20) == [352] * 18 + [351] * 2
    assert schema.shard_sizes(7, 3) == [3, 2, 2]
    with pytest.raises(ValueError):
        schema.shard_sizes(3, 4)


def test_write_then_read_round_trip(tmp_path):
    records = [(f"img{i:03d}", jpeg(seed=i)) for i in range(7)]
    paths = write_shards(records, tmp_path, "monet", 3)
    assert [os.path.basename(p) for p in paths] == ["monet00-3.tfrec", "monet01-2.tfrec", "monet02-2.tfrec"]
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)  # no temp files left
    # TensorFlow's own reader sees the same names, bytes and target, in order.
    seen = [r for p in paths for r in tf_records(p)]
    assert [(r["image_name"].decode(), r["image"], r["target"]) for r in seen] == \
        [(name, data, b"monet") for name, data in records]
    # And the Python reader agrees.
    ours = [rec for p in paths for _, rec, problem in iter_records(p) if problem is None]
    assert ours == [{"image_name": n, "image": d, "target": "monet"} for n, d in records]
    decoded = tf.io.decode_jpeg(seen[0]["image"], channels=3).numpy()
    assert decoded.shape == (DEMO_SIZE, DEMO_SIZE, 3)


def test_iter_records_reports_truncation_at_the_lost_record(tmp_path):
    records = [schema.encode_example(f"n{i}", jpeg(seed=i), "photo") for i in range(3)]
    path = write_raw(tmp_path / "x.tfrec", records)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    items = list(iter_records(path))
    assert [i for i, rec, _ in items if rec is not None] == [0, 1]
    index, record, problem = items[-1]
    assert (index, record) == (2, None) and "unreadable TFRecord data" in problem


# --- demo data -----------------------------------------------------------------------------

def test_demo_layout_is_kaggle_like(demo_data_dir):
    assert sorted(os.listdir(demo_data_dir)) == ["monet_jpg", "monet_tfrec", "photo_jpg", "photo_tfrec"]
    all_names = []
    for domain, count in DEMO_COUNTS.items():
        files = sorted(os.listdir(demo_data_dir / f"{domain}_tfrec"))
        shards = min(count, {"monet": 5, "photo": 20}[domain])
        matches = [SHARD_RE.match(f) for f in files]
        assert all(matches) and {m[1] for m in matches} == {domain}
        assert [int(m[2]) for m in matches] == list(range(shards))
        names = []
        for f, m in zip(files, matches):
            records = tf_records(demo_data_dir / f"{domain}_tfrec" / f)
            assert int(m[3]) == len(records)
            for r in records:
                assert r["target"] == domain.encode()
                jpg = (demo_data_dir / f"{domain}_jpg" / (r["image_name"].decode() + ".jpg")).read_bytes()
                assert jpg == r["image"]
                assert tf.io.decode_jpeg(r["image"]).shape == (DEMO_SIZE, DEMO_SIZE, 3)
            names += [r["image_name"].decode() for r in records]
        assert len(names) == count
        assert all(re.fullmatch(r"[0-9a-f]{10}", n) for n in names)
        assert sorted(n + ".jpg" for n in names) == sorted(os.listdir(demo_data_dir / f"{domain}_jpg"))
        all_names += names
    assert len(set(all_names)) == len(all_names)


def tree_bytes(root):
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(root) for f in files}


def test_demo_is_deterministic_per_seed(tmp_path):
    kwargs = dict(n_monet=3, n_photos=4, size=32)
    make_demo(tmp_path / "a", seed=7, **kwargs)
    make_demo(tmp_path / "b", seed=7, **kwargs)
    make_demo(tmp_path / "c", seed=8, **kwargs)
    a, b, c = (tree_bytes(tmp_path / x) for x in "abc")
    assert a == b and len(a) == 7 + 3 + 4  # 7 JPEGs, 3 + 4 shards
    jpgs = {k: v for k, v in a.items() if k.endswith(".jpg")}
    assert not set(jpgs.values()) & {v for k, v in c.items() if k.endswith(".jpg")}
    assert len(set(jpgs.values())) == 7  # no image repeats


def test_demo_more_images_keep_the_first_ones(tmp_path):
    make_demo(tmp_path / "small", n_monet=2, n_photos=2, size=32, seed=3)
    make_demo(tmp_path / "large", n_monet=3, n_photos=5, size=32, seed=3)
    for domain in ("monet", "photo"):
        small = tree_bytes(tmp_path / "small" / f"{domain}_jpg")
        large = tree_bytes(tmp_path / "large" / f"{domain}_jpg")
        assert small.items() <= large.items()


def laplacian_energy(rgb):
    """Mean |4-neighbour Laplacian| of BT.601 luminance, pixel values in [0, 1]."""
    lum = (rgb.astype(np.float64) / 255) @ np.array([0.299, 0.587, 0.114])
    centre = lum[1:-1, 1:-1]
    return np.abs(4 * centre - lum[:-2, 1:-1] - lum[2:, 1:-1] - lum[1:-1, :-2] - lum[1:-1, 2:]).mean()


def saturation(rgb):
    """Mean HSV saturation (max - min) / max."""
    rgb = rgb.astype(np.float64)
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    return np.mean(np.where(high > 0, (high - low) / np.maximum(high, 1), 0))


def test_paintings_and_photos_differ_measurably():
    def stats(domain):
        images = [np.asarray(Image.open(io.BytesIO(demo_image(domain, i, 64, seed=11)))) for i in range(8)]
        return np.array([laplacian_energy(x) for x in images]), np.array([saturation(x) for x in images])

    paint_hf, paint_sat = stats("monet")
    photo_hf, photo_sat = stats("photo")
    # Brush strokes: every painting has more fine-scale energy than every photo.
    assert paint_hf.min() > photo_hf.max()
    assert paint_hf.mean() > 1.5 * photo_hf.mean()
    # Pastel grade: paintings are less saturated on average.
    assert paint_sat.mean() < photo_sat.mean() - 0.05


def test_demo_refuses_a_non_empty_folder_unless_forced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(MonetKerasError, match="not empty"):
        make_demo(out, n_monet=1, n_photos=1, size=16)
    assert os.listdir(out) == ["keep.txt"]
    make_demo(out, n_monet=1, n_photos=1, size=16, force=True)
    assert sorted(os.listdir(out)) == ["monet_jpg", "monet_tfrec", "photo_jpg", "photo_tfrec"]


def test_interrupted_demo_leaves_nothing(tmp_path, monkeypatch):
    import tfrecords_tools.demo as demo

    calls = []

    def failing(domain, index, size, seed, quality=95):
        calls.append(index)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return jpeg(size)

    monkeypatch.setattr(demo, "demo_image", failing)
    with pytest.raises(KeyboardInterrupt):
        make_demo(tmp_path / "out", n_monet=2, n_photos=2, size=16)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kwargs, culprit", [
    (dict(n_monet=0), "monet images 0"),
    (dict(shards_photo=5, n_photos=4), "photo shards 5"),
    (dict(size=8), "image size 8"),
    (dict(seed=-1), "seed -1"),
])
def test_demo_rejects_bad_parameters(tmp_path, kwargs, culprit):
    with pytest.raises(MonetKerasError, match=culprit):
        make_demo(tmp_path / "out", **{"size": 16, **kwargs})
    assert not (tmp_path / "out").exists()


# --- held-out (photo, painting) pairs ---------------------------------------------------------

def monet_grade(rgb):
    """The painting style's colour grade, from its formula: with luminance L (BT.601), add
    (1-L)^2 (0.06, 0, 0.20) and L^2 (0.10, 0.05, -0.08), contrast 0.8 about 0.5, lift to 0.1."""
    lum = (rgb @ np.array([0.299, 0.587, 0.114]))[..., None]
    graded = rgb + (1 - lum) ** 2 * np.array([0.06, 0.0, 0.20]) + lum ** 2 * np.array([0.10, 0.05, -0.08])
    return 0.1 + 0.9 * np.clip(0.5 + 0.8 * (graded - 0.5), 0, 1)


def block_means(images, block):
    """(n, s, s, 3) -> (n, s/block, s/block, 3): the mean of each block x block square."""
    n, size = images.shape[:2]
    return images.reshape(n, size // block, block, size // block, block, 3).mean(axis=(2, 4))


def test_demo_pairs_are_deterministic_distinct_and_held_out():
    photos, paintings = demo_pairs(4, size=32, seed=6)
    assert photos.shape == paintings.shape == (4, 32, 32, 3)
    assert photos.dtype == paintings.dtype == np.uint8
    again, again_paintings = demo_pairs(3, size=32, seed=6)  # fewer pairs: the same first ones
    assert np.array_equal(again, photos[:3]) and np.array_equal(again_paintings, paintings[:3])
    other, _ = demo_pairs(4, size=32, seed=7)
    images = [*photos, *paintings, *other]
    assert all(np.abs(a.astype(int) - b).mean() > 5 for i, a in enumerate(images) for b in images[i + 1:])
    # Scenes of their own: none is one of make_demo's photos of the same seed.
    made = [np.asarray(Image.open(io.BytesIO(demo_image("photo", i, 32, seed=6)))) for i in range(4)]
    assert all(np.abs(a.astype(int) - b).mean() > 5 for a in photos for b in made)


def test_demo_painting_is_the_style_of_its_photo_scene():
    size, block = 64, 8
    photos, paintings = demo_pairs(6, size=size, seed=5)
    # Undo the photo's vignette 1 - 0.35 r^2 (r from the centre, in image widths); its sensor
    # noise and the painting's strokes average out over blocks of about two strokes.
    x = (np.arange(size) + 0.5) / size - 0.5
    scene = np.clip(photos / 255 / (1 - 0.35 * (x[None, :] ** 2 + x[:, None] ** 2))[..., None], 0, 1)
    expected = block_means(monet_grade(scene), block)
    painted = block_means(paintings / 255, block)
    error = np.abs(painted[:, None] - expected[None]).mean(axis=(2, 3, 4))  # painting i vs grade(photo j)
    own = np.diag(error)
    assert own.max() < 0.025
    assert np.all(own < np.abs(painted - block_means(scene, block)).mean(axis=(1, 2, 3)) / 3)  # graded
    off_diagonal = error[~np.eye(len(error), dtype=bool)].reshape(len(error), -1)
    assert np.all(3 * own < off_diagonal.min(axis=1))  # its own photo's scene, not another's


@pytest.mark.parametrize("kwargs, culprit", [
    (dict(n=0), "pairs 0"), (dict(size=8), "image size 8"), (dict(seed=-1), "seed -1")])
def test_demo_pairs_reject_bad_parameters(kwargs, culprit):
    with pytest.raises(MonetKerasError, match=culprit):
        demo_pairs(**{"n": 1, "size": 16, **kwargs})


# --- conversions ---------------------------------------------------------------------------

def test_from_jpg_then_to_jpg_round_trip(demo_data_dir, tmp_path):
    src = demo_data_dir / "photo_jpg"
    paths = from_jpg(src, tmp_path / "out", "photo", shards=3)
    assert [os.path.basename(p) for p in paths] == ["photo00-4.tfrec", "photo01-3.tfrec", "photo02-3.tfrec"]
    seen = {r["image_name"].decode(): r["image"] for p in paths for r in tf_records(p)}
    assert seen == {f[:-4]: (src / f).read_bytes() for f in os.listdir(src)}
    assert to_jpg([tmp_path / "out" / "photo_tfrec"], tmp_path / "back") == DEMO_COUNTS["photo"]
    assert tree_bytes(tmp_path / "back") == tree_bytes(src)


def test_from_jpg_names_the_bad_file_and_writes_nothing(demo_data_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(demo_data_dir / "monet_jpg", src)
    (src / "zz_fake.jpg").write_bytes(jpeg(fmt="PNG"))
    with pytest.raises(MonetKerasError, match=r"zz_fake\.jpg: PNG image bytes, not a JPEG"):
        from_jpg(src, tmp_path / "out", "monet")
    (src / "zz_fake.jpg").unlink()
    (src / "notes.txt").write_text("x")
    with pytest.raises(MonetKerasError, match=r"notes\.txt: not a \.jpg file"):
        from_jpg(src, tmp_path / "out", "monet")
    assert not (tmp_path / "out").exists()


def test_conversions_refuse_to_replace_their_input(demo_data_dir, tmp_path):
    shutil.copytree(demo_data_dir / "monet_tfrec", tmp_path / "monet_tfrec")
    with pytest.raises(MonetKerasError, match="would replace the input"):
        to_jpg([tmp_path / "monet_tfrec"], tmp_path, force=True)
    with pytest.raises(MonetKerasError, match="would replace the input"):
        from_jpg(tmp_path / "monet_tfrec", tmp_path, "monet", force=True)
    assert len(os.listdir(tmp_path / "monet_tfrec")) == 5


def test_to_jpg_refuses_unsafe_names(tmp_path):
    path = write_raw(tmp_path / "x.tfrec", [schema.encode_example("../escape", jpeg(), "photo")])
    with pytest.raises(MonetKerasError, match=r"x\.tfrec: record 0: image_name '\.\./escape'"):
        to_jpg([path], tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["x.tfrec"]


# --- scanning ------------------------------------------------------------------------------

def test_scan_of_clean_demo_data(demo_data_dir):
    report = scan(demo_data_dir, expected_size=DEMO_SIZE)
    assert report.ok and report.problems == [] and report.ignored == []
    assert report.totals() == {(d, k): n for d, n in DEMO_COUNTS.items() for k in ("tfrec", "jpg")}
    tfrec = [f for f in report.files if f.kind == "tfrec"]
    assert len(tfrec) == 5 + 10
    assert all(f.features == {"image": "bytes", "image_name": "bytes", "target": "bytes"} for f in tfrec)
    for f in report.files:
        assert dict(f.sizes) == {(DEMO_SIZE, DEMO_SIZE): f.count} and set(f.modes) == {"RGB"}


def example(**features):
    """A serialized tf.train.Example with bytes (or int64 for ints) features."""
    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    return tf.train.Example(features=tf.train.Features(
        feature={k: feature(v) for k, v in features.items()})).SerializeToString()


def good(i):
    return schema.encode_example(f"ok{i}", jpeg(seed=i), "monet")


def monet_record(image):
    return schema.encode_example("b", image, "monet")


BAD_RECORDS = {
    "garbage_jpeg": (monet_record(b"\xff\xd8\xff\xe0" + bytes(range(200))), "JPEG does not decode"),
    "truncated_jpeg": (monet_record(jpeg()[:600]), "JPEG does not decode (OSError"),
    "png_bytes": (monet_record(jpeg(fmt="PNG")), "PNG image bytes, not a JPEG"),
    "not_an_image": (monet_record(b"hello world"), "not an image"),
    "grayscale": (monet_record(jpeg(mode="L")), "grayscale (mode L)"),
    "wrong_size": (monet_record(jpeg(size=40)), "40x40 pixels, expected 32x32"),
    "missing_feature": (example(image_name=b"b", image=jpeg()), "feature 'target' is missing"),
    "wrong_kind": (example(image_name=b"b", image=7, target=b"monet"),
                   "feature 'image' is int64, expected bytes"),
    "not_an_example": (b"\xff\xff\xff\xff garbage", "not a tf.train.Example"),
    "wrong_target": (schema.encode_example("b", jpeg(), "photo"), "target 'photo' in a monet file"),
}


@pytest.mark.parametrize("fault", sorted(BAD_RECORDS))
def test_scan_names_file_and_record_of_each_bad_record(tmp_path, fault):
    payload, message = BAD_RECORDS[fault]
    path = write_raw(tmp_path / "monet00-3.tfrec", [good(0), payload, good(2)])
    report = scan(path, expected_size=DEMO_SIZE)
    assert [str(p) for p in report.problems] == [f"{path}: record 1: {p.what}" for p in report.problems]
    assert len(report.problems) == 1 and message in report.problems[0]
    assert (report.problems[0].path, report.problems[0].index) == (str(path), 1)
    assert report.files[0].count == 3


@pytest.mark.parametrize("fault", ["garbage_jpeg", "truncated_jpeg"])
def test_images_called_undecodable_are_undecodable_for_tensorflow(fault):
    image = schema.decode_record(BAD_RECORDS[fault][0])["image"]
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_jpeg(image, channels=3)


def test_scan_truncated_file_and_wrong_count_in_name(demo_data_dir, tmp_path):
    shard = sorted((demo_data_dir / "monet_tfrec").iterdir())[0]
    count = int(SHARD_RE.match(shard.name)[3])
    truncated = tmp_path / shard.name
    truncated.write_bytes(shard.read_bytes()[:-20])
    [problem] = scan(truncated, expected_size=DEMO_SIZE).problems
    assert problem.startswith(f"{truncated}: record {count - 1}: unreadable TFRecord data")
    renamed = tmp_path / "monet07-99.tfrec"
    shutil.copy(shard, renamed)
    [problem] = scan(renamed, expected_size=DEMO_SIZE).problems
    assert problem == f"{renamed}: name says 99 records, file holds {count}"


def test_scan_folder_faults(demo_data_dir, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_data_dir, root)
    (root / "photo_jpg" / "Thumbs.db").write_bytes(b"\0" * 10)
    (root / "monet_jpg" / "gray.jpg").write_bytes(jpeg(mode="L"))
    (root / "README.txt").write_text("notes")
    empty = tmp_path / "empty"
    empty.mkdir()
    report = scan([root, empty, tmp_path / "missing"], expected_size=DEMO_SIZE)
    assert [str(p) for p in report.problems] == [
        f"{root / 'monet_jpg' / 'gray.jpg'}: grayscale (mode L), expected RGB",
        f"{root / 'photo_jpg' / 'Thumbs.db'}: stray file: not a .tfrec or .jpg file",
        f"{empty}: empty folder",
        f"{tmp_path / 'missing'}: no such file or folder",
    ]
    assert report.ignored == [str(root / "README.txt")]
    assert report.totals()[("monet", "jpg")] == DEMO_COUNTS["monet"] + 1


def test_require_clean_raises_with_the_first_problem(demo_data_dir):
    assert require_clean(demo_data_dir, expected_size=DEMO_SIZE).ok
    first = r"monet_jpg.*\.jpg: 32x32 pixels, expected 64x64 \(and \d+ more"
    with pytest.raises(MonetKerasError, match=first):
        require_clean(demo_data_dir, expected_size=64)
    with pytest.raises(MonetKerasError, match=r"32x32 pixels, expected 64x64$"):
        require_clean(demo_data_dir, expected_size=64, fail_fast=True)


# --- command line --------------------------------------------------------------------------

def test_cli_inspect_lists_every_problem(demo_data_dir, tmp_path, capsys):
    assert cli.main(["inspect", str(demo_data_dir), "--size", str(DEMO_SIZE)]) == 0
    out = capsys.readouterr().out
    assert f"total: monet {DEMO_COUNTS['monet']} in .jpg; monet {DEMO_COUNTS['monet']} in .tfrec" in out
    assert "image:bytes image_name:bytes target:bytes" in out and out.rstrip().endswith("no problems")
    records = [good(0), BAD_RECORDS["png_bytes"][0], BAD_RECORDS["grayscale"][0]]
    bad = write_raw(tmp_path / "monet00-3.tfrec", records)
    assert cli.main(["inspect", str(bad), "--size", str(DEMO_SIZE)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: record 1: PNG image bytes" in out and f"{bad}: record 2: grayscale" in out


def test_cli_usage_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["inspect", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope'}: no such file or folder\n"
    assert cli.main(["to-jpg", str(tmp_path / "nope.tfrec"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", str(tmp_path / "x"), "--size", "big"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: argument --size")


def test_cli_processes_demo_inspect_and_errors(tmp_path):
    out = tmp_path / "demo"
    done = run_cli("demo", out, "--monet", 2, "--photos", 3, "--size", 32, "--seed", 1)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out / "photo_tfrec")) == [f"photo0{i}-1.tfrec" for i in range(3)]
    done = run_cli("inspect", out, "--size", 32)
    assert done.returncode == 0 and done.stdout.rstrip().endswith("no problems"), done.stdout + done.stderr
    (out / "photo_jpg" / "extra.jpg").write_bytes(b"not a jpeg")
    done = run_cli("inspect", out, "--size", 32)
    assert done.returncode == 1 and f"{out / 'photo_jpg' / 'extra.jpg'}: not an image" in done.stdout
    done = run_cli("from-jpg", out / "photo_jpg", tmp_path / "conv", "--domain", "photo")
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {out / 'photo_jpg' / 'extra.jpg'}: not an image")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "conv").exists()
