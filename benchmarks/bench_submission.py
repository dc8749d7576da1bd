"""Images per second: monet_keras.submit.translate.write_submission vs the Kaggle tutorial's loop.

Baseline (the tutorial's way, as its notebook does it): photos batched by 1, for each one
``generator(img, training=False)[0].numpy()``, ``(x * 127.5 + 127.5).astype(uint8)``, PIL
``save`` to ``N.jpg`` in a folder (PIL's default quality 75), then ``shutil.make_archive`` zips
the folder. Ours: :func:`write_submission` (batched traced inference, JPEG encoding on a
worker thread overlapped with the next batch, streamed into the zip; quality 95).

Ours runs in each of ``--precisions`` (float32, and bfloat16: what ``precision="auto"`` picks on a
CPU with bfloat16 instructions); the script also prints how far the bfloat16 pixels are from the
float32 ones, before JPEG encoding. The generator's instance-norm gains are set to 1, so that its
output varies with its input as a trained one's does (at the initial gains of N(0, 0.02) it is
nearly constant, which would make the precisions look closer than they are).

Both use the same generator object and the same photos (a synthetic Kaggle-layout TFRecord
folder, or ``--photos``), in the same process, end to end including tf.data reading and
``tf.function`` tracing; one warm-up call of each runs first so TensorFlow start-up costs
neither. Prints images/s and the ratio ours / baseline (medians over ``--repeats`` alternating
rounds, which evens out other load on the machine).

    python benchmarks/bench_submission.py --base-filters 16 --photos-count 300
    python benchmarks/bench_submission.py --base-filters 64 --photos-count 256 --batch-sizes 32 --repeats 2
"""

import argparse
import io
import os
import shutil
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from monet_keras.data.pipeline import load_images  # noqa: E402
from monet_keras.data.source import find_images  # noqa: E402
from monet_keras.model.networks import build_generator  # noqa: E402
from monet_keras.submit.translate import encode_jpeg, translate_function, write_submission  # noqa: E402
from tfrecords_tools.schema import encode_example, shard_name  # noqa: E402


def synthetic_photos(root, count, seed=0):
    """A Kaggle-layout folder: ``photo_tfrec/photo00-COUNT.tfrec`` of 256x256 JPEG photos."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "photo_tfrec")
    os.makedirs(folder)
    with tf.io.TFRecordWriter(os.path.join(folder, shard_name("photo", 0, count))) as writer:
        for i in range(count):
            coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(
                (256, 256), Image.BILINEAR)
            buffer = io.BytesIO()
            coarse.save(buffer, "JPEG", quality=90)
            writer.write(encode_example(f"photo{i:05d}", buffer.getvalue(), "photo"))
    return root


def tutorial_baseline(generator, photos, out_zip, work_dir):
    """The tutorial's submission loop; returns the number of images written."""
    images_dir = os.path.join(work_dir, "images")
    os.makedirs(images_dir, exist_ok=True)
    photo_ds = load_images(find_images(photos), 256).batch(1)
    i = 1
    for img in photo_ds:
        prediction = generator(img, training=False)[0].numpy()
        prediction = (prediction * 127.5 + 127.5).astype(np.uint8)
        im = Image.fromarray(prediction)
        im.save(os.path.join(images_dir, f"{i}.jpg"))
        i += 1
    shutil.make_archive(out_zip[: -len(".zip")], "zip", images_dir)
    shutil.rmtree(images_dir)
    return i - 1


def pixel_difference(generator, photos, count=32):
    """Print how far the bfloat16 generator's uint8 pixels are from the float32 one's (no JPEG)."""
    batch = next(iter(load_images(find_images(photos), 256).batch(count)))
    exact = translate_function(generator, 256, "float32")(batch).astype(np.int16)
    fast = translate_function(generator, 256, "bfloat16")(batch).astype(np.int16)
    levels = np.abs(fast - exact)
    jpeg = np.abs(np.stack([np.asarray(Image.open(io.BytesIO(encode_jpeg(image.astype(np.uint8)))))
                            for image in exact]).astype(np.int16) - exact)
    print(f"bfloat16 vs float32 pixels ({len(batch)} photos, before JPEG): mean |difference| "
          f"{levels.mean():.3f} levels, 99th percentile {np.percentile(levels, 99):.0f}, max {levels.max()}, "
          f"{(levels > 0).mean():.1%} of values differ; JPEG q95 of the float32 pixels: mean "
          f"{jpeg.mean():.3f}, 99th percentile {np.percentile(jpeg, 99):.0f}, max {jpeg.max()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", help="a photo folder (default: synthetic TFRecords)")
    parser.add_argument("--photos-count", type=int, default=300, help="synthetic photos (default 300)")
    parser.add_argument("--base-filters", type=int, default=16, help="generator width (tutorial: 64)")
    parser.add_argument("--batch-sizes", default="16,32", help="our batch sizes to measure (default 16,32)")
    parser.add_argument("--quality", type=int, default=95)
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds; medians are reported")
    parser.add_argument("--precisions", default="float32,bfloat16",
                        help="our generator's compute dtypes to measure (default float32,bfloat16)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench_submission.")
    try:
        photos = args.photos or synthetic_photos(os.path.join(work, "data"), args.photos_count)
        generator = build_generator(256, args.base_filters, seed=0)
        for layer in generator.layers:  # unit gains: an output that varies with the input
            if isinstance(layer, keras.layers.GroupNormalization):
                layer.gamma.assign(np.ones(layer.gamma.shape))
        precisions = args.precisions.split(",")
        source = photos if args.photos else f"{args.photos_count} synthetic 256x256 JPEGs (TFRecord)"
        print(f"settings: generator 256 px, base_filters={args.base_filters} "
              f"({generator.count_params():,} params); photos {source}; "
              f"CPU threads: TensorFlow default; {os.cpu_count()} logical CPUs")

        # Warm-up: TensorFlow/oneDNN initialisation is paid once, before either measurement.
        warm = synthetic_photos(os.path.join(work, "warm"), 4, seed=1)
        tutorial_baseline(generator, warm, os.path.join(work, "warm_base.zip"), work)
        write_submission(generator, warm, os.path.join(work, "warm.zip"), batch_size=2, progress=False)

        if "bfloat16" in precisions:
            pixel_difference(generator, photos)

        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
        ours = [(precision, b) for precision in precisions for b in batch_sizes]
        base_rates, our_rates = [], {key: [] for key in ours}
        for _ in range(args.repeats):  # alternate, so a busy moment on the machine hits both
            start = time.perf_counter()
            n_base = tutorial_baseline(generator, photos, os.path.join(work, "baseline.zip"), work)
            base_rates.append(n_base / (time.perf_counter() - start))
            for precision, batch_size in ours:
                report = write_submission(generator, photos, os.path.join(work, f"images_{batch_size}.zip"),
                                          batch_size=batch_size, quality=args.quality, progress=False,
                                          precision=precision)
                assert report.count == n_base
                our_rates[precision, batch_size].append(report.images_per_second)
        base_rate = statistics.median(base_rates)
        print(f"baseline (tutorial: batch 1, eager call, PIL save to folder, make_archive): "
              f"{base_rate:.2f} images/s ({n_base} images, median of {args.repeats})")
        for precision, batch_size in ours:
            rate = statistics.median(our_rates[precision, batch_size])
            print(f"ours (write_submission, {precision}, batch {batch_size}, quality {args.quality}): "
                  f"{rate:.2f} images/s  ratio {rate / base_rate:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
