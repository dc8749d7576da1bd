"""Checking one image's bytes the way the training input expects them: an RGB JPEG of a size."""

import collections
import io

from PIL import Image, UnidentifiedImageError

ImageInfo = collections.namedtuple("ImageInfo", "width height mode format")

# PIL calls JPEGs with a multi-picture extension (some cameras) "MPO"; tf.io.decode_jpeg reads them.
_JPEG_FORMATS = ("JPEG", "MPO")
_JPEG_START = b"\xff\xd8\xff"  # start-of-image marker and the first segment's marker byte


def check_jpeg(data: bytes, expected_size=None):
    """Decode ``data`` fully with PIL; return ``(info, problems)``.

    ``info`` is an :data:`ImageInfo` (width, height, PIL mode, PIL format ``JPEG`` or ``MPO``) or
    ``None`` when the bytes are not a decodable JPEG. ``problems`` lists one-line reasons, without
    a file name: not an image, an image but not a JPEG (e.g. PNG), a JPEG that does not decode
    (truncated or corrupt), not RGB (grayscale is mode ``L``), or not ``expected_size`` x
    ``expected_size`` pixels (``None`` accepts any size).
    """
    if not data:
        return None, ["image bytes are empty"]
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in _JPEG_FORMATS:
                return None, [f"{img.format} image bytes, not a JPEG"]
            img.load()
            info = ImageInfo(img.width, img.height, img.mode, img.format)
    except UnidentifiedImageError:
        if data.startswith(_JPEG_START):
            return None, [f"JPEG does not decode (unreadable header in {len(data)} bytes)"]
        return None, [f"not an image ({len(data)} bytes starting {data[:4].hex()})"]
    except Exception as e:  # noqa: BLE001 -- any decoder failure is a fact about the data
        return None, [f"JPEG does not decode ({type(e).__name__}: {' '.join(str(e).split())})"]
    problems = []
    if info.mode != "RGB":
        what = "grayscale" if info.mode in ("L", "1", "LA", "I", "I;16") else "not RGB"
        problems.append(f"{what} (mode {info.mode}), expected RGB")
    if expected_size and (info.width, info.height) != (expected_size, expected_size):
        problems.append(f"{info.width}x{info.height} pixels, expected {expected_size}x{expected_size}")
    return info, problems
