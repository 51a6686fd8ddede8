import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from gantools.data import (
    grey_levels,
    grid_centers,
    images_to_unit,
    load_source,
    point_standardisation,
    ring_centers,
    unit_to_uint8,
)
from gantools.errors import GanToolsError


def test_digits_is_sklearn_digits_scaled_to_bytes():
    from sklearn.datasets import load_digits

    src = load_source("digits")
    ref = load_digits()
    assert len(src) == 1797 and src.sample_shape == (1, 8, 8) and src.num_classes == 10
    x, y = src.take()
    np.testing.assert_array_equal(y, ref.target)
    np.testing.assert_allclose(x[:, 0] * 16.0, ref.images, atol=16 / 255 / 2 + 1e-6)


def test_holdout_split_is_every_fourth_sample_and_disjoint():
    full, train, test = load_source("digits"), load_source("digits:train"), load_source("digits:test")
    assert (len(train), len(test)) == (1348, 449)
    np.testing.assert_array_equal(test.x, full.x[3::4])
    np.testing.assert_array_equal(train.y, np.delete(full.y, np.arange(3, 1797, 4)))
    assert np.bincount(test.y).min() >= 40  # every class is held out
    assert load_source("digits:test", image_size=16).sample_shape == (1, 16, 16)
    with pytest.raises(GanToolsError, match="sampled on the fly"):
        load_source("ring:test")


def test_a_path_with_a_split_suffix_in_its_name_is_a_path(tmp_path):
    folder = tmp_path / "imgs:test"
    for i in range(4):
        _png(folder / f"{i}.png", np.full((4, 4), 60 * i, np.uint8))
    assert len(load_source(str(folder))) == 4
    assert len(load_source(f"{folder}:test")) == 1


def test_grey_levels_finds_the_digits_17_and_nothing_in_full_range_images(tmp_path):
    assert grey_levels(load_source("digits")) == 17
    assert grey_levels(load_source("ring")) == 0
    np.save(tmp_path / "binary.npy", np.random.default_rng(0).choice([0, 255], (10, 8, 8)).astype(np.uint8))
    assert grey_levels(load_source(str(tmp_path / "binary.npy"))) == 2
    np.save(tmp_path / "full.npy", np.random.default_rng(0).integers(0, 256, (10, 8, 8), dtype=np.uint8))
    assert grey_levels(load_source(str(tmp_path / "full.npy"))) == 0


def test_point_standardisation_of_the_mixtures_is_analytic():
    center, scale = point_standardisation(load_source("grid"))
    assert center == [0.0, 0.0]
    assert scale == pytest.approx(np.sqrt(8.0 + 0.05**2))  # E[x^2] of {-4,-2,0,2,4} is 8
    center, scale = point_standardisation(load_source("ring"))
    assert scale == pytest.approx(np.sqrt(0.5 + 0.01**2))


def test_digits_resized():
    src = load_source("digits", image_size=16)
    assert src.sample_shape == (1, 16, 16) and len(src) == 1797


@pytest.mark.parametrize("name,k,sigma", [("ring", 8, 0.01), ("grid", 25, 0.05)])
def test_mixtures_sample_around_their_modes(name, k, sigma):
    src = load_source(name)
    centers = ring_centers() if name == "ring" else grid_centers()
    assert len({tuple(np.round(c, 6)) for c in centers}) == k
    x, y = src.take(5000, seed=3)
    assert x.shape == (5000, 2) and x.dtype == np.float32
    offsets = x - centers[y]
    assert abs(offsets.std() - sigma) < 0.1 * sigma
    assert np.bincount(y, minlength=k).min() > 5000 / k * 0.7
    if name == "ring":
        np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 1.0)
    else:
        assert set(np.unique(centers)) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_draw_is_a_pure_function_of_seed_and_step():
    src = load_source("digits")
    a, ya = src.draw(16, seed=1, step=5)
    b, yb = src.draw(16, seed=1, step=5)
    c, _ = src.draw(16, seed=1, step=6)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.min() >= -1 and a.max() <= 1 and a.shape == (16, 1, 8, 8)


def test_take_subset_is_seeded_and_distinct():
    src = load_source("digits")
    x1, _ = src.take(100, seed=0)
    x2, _ = src.take(100, seed=0)
    x3, _ = src.take(100, seed=1)
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(x1, x3)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_with_class_subfolders_grayscale(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        for i in range(3):
            _png(tmp_path / cls / f"{i}.png", rng.integers(0, 256, (12, 12), dtype=np.uint8))
    src = load_source(str(tmp_path))
    assert src.sample_shape == (1, 12, 12) and len(src) == 6
    assert src.class_names == ["cat", "dog"] and list(src.y) == [0, 0, 0, 1, 1, 1]
    x, _ = src.take()
    saved = np.asarray(Image.open(tmp_path / "dog" / "0.png"))
    np.testing.assert_array_equal(unit_to_uint8(x[3:4])[0, ..., 0], saved)


def test_folder_rgb_flat_and_jpg_bmp(tmp_path):
    rng = np.random.default_rng(1)
    _png(tmp_path / "a.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    _png(tmp_path / "b.bmp", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    _png(tmp_path / "sub" / "c.jpg", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    src = load_source(str(tmp_path))
    assert src.sample_shape == (3, 8, 8) and len(src) == 3 and src.num_classes == 0


def test_folder_mixed_sizes_needs_image_size(tmp_path):
    _png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    _png(tmp_path / "b.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(GanToolsError, match="--image-size"):
        load_source(str(tmp_path))
    assert load_source(str(tmp_path), image_size=16).sample_shape == (1, 16, 16)


def test_folder_errors(tmp_path):
    with pytest.raises(GanToolsError, match="no images"):
        load_source(str(tmp_path))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(GanToolsError, match="bad.png"):
        load_source(str(tmp_path))
    with pytest.raises(GanToolsError, match="single image"):
        load_source(str(tmp_path / "bad.png"))


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (5, 9, 9, 3 if layout != "nhw" else 1), dtype=np.uint8)
    arr = {"nhw": nhwc[..., 0], "nhwc": nhwc, "nchw": nhwc.transpose(0, 3, 1, 2)}[layout]
    np.savez(tmp_path / "d.npz", x=arr, y=np.arange(5))
    src = load_source(str(tmp_path / "d.npz"))
    x, y = src.take()
    np.testing.assert_array_equal(unit_to_uint8(x), nhwc)
    assert list(y) == [0, 1, 2, 3, 4] and src.num_classes == 5


def test_float_arrays_in_both_ranges_give_the_same_images(tmp_path):
    unit = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", unit)
    np.savez(tmp_path / "b.npz", images=unit * 2 - 1, labels=np.array([0, 1, 0, 1]))
    a, _ = load_source(str(tmp_path / "a.npy")).take()
    b, yb = load_source(str(tmp_path / "b.npz")).take()
    np.testing.assert_allclose(a, unit[:, None], atol=1e-7)
    np.testing.assert_allclose(b, unit[:, None], atol=1e-6)
    assert list(yb) == [0, 1, 0, 1]


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "range.npz", x=np.full((3, 8, 8), 7.0))
    with pytest.raises(GanToolsError, match=r"0\.\.255 pixels, or floats in \[0, 1\]"):
        load_source(str(tmp_path / "range.npz"))
    np.savez(tmp_path / "wide.npz", x=np.full((3, 8, 8), 300, np.int64))
    with pytest.raises(GanToolsError, match="found 300..300"):
        load_source(str(tmp_path / "wide.npz"))
    np.savez(tmp_path / "shape.npz", x=np.zeros((3, 5, 8, 8), np.uint8))
    with pytest.raises(GanToolsError, match="channel"):
        load_source(str(tmp_path / "shape.npz"))
    np.savez(tmp_path / "stats.npz", mu=np.zeros(4), sigma=np.eye(4))
    with pytest.raises(GanToolsError, match="reference statistics"):
        load_source(str(tmp_path / "stats.npz"))
    np.savez(tmp_path / "labels.npz", x=np.zeros((3, 8, 8), np.uint8), y=np.zeros(2, np.int64))
    with pytest.raises(GanToolsError, match="labels"):
        load_source(str(tmp_path / "labels.npz"))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(GanToolsError, match="cannot read"):
        load_source(str(tmp_path / "junk.npz"))


def test_8_bit_pixels_stored_in_a_wider_integer_type_read_as_uint8(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "u8.npz", x=pixels)
    np.savez(tmp_path / "i64.npz", x=pixels.astype(np.int64))
    a, b = load_source(str(tmp_path / "u8.npz")), load_source(str(tmp_path / "i64.npz"))
    assert b.x.dtype == np.uint8 and np.array_equal(a.x, b.x)


def test_npz_points(tmp_path):
    np.savez(tmp_path / "p.npz", x=np.random.default_rng(0).standard_normal((10, 2)))
    src = load_source(str(tmp_path / "p.npz"))
    assert src.kind == "points" and src.sample_shape == (2,)


def _idx(path, array, magic_type=0x08, gz=False):
    header = struct.pack(">BBBB", 0, 0, magic_type, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_with_labels(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9], np.uint8)
    ext = ".gz" if gz else ""
    _idx(tmp_path / f"train-images-idx3-ubyte{ext}", images, gz=gz)
    _idx(tmp_path / f"train-labels-idx1-ubyte{ext}", labels, gz=gz)
    src = load_source(str(tmp_path / f"train-images-idx3-ubyte{ext}"))
    x, y = src.take()
    np.testing.assert_array_equal(unit_to_uint8(x)[..., 0], images)
    np.testing.assert_array_equal(y, labels)
    assert src.num_classes == 10


def test_mnist_idx_errors(tmp_path):
    images = np.zeros((4, 5, 5), np.uint8)
    _idx(tmp_path / "t10k-images-idx3-ubyte", images)
    raw = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "cut-images-idx3-ubyte").write_bytes(raw[:-7])
    with pytest.raises(GanToolsError, match="truncated"):
        load_source(str(tmp_path / "cut-images-idx3-ubyte"))
    (tmp_path / "bad-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04" + raw[4:])
    with pytest.raises(GanToolsError, match="magic"):
        load_source(str(tmp_path / "bad-images-idx3-ubyte"))
    assert load_source(str(tmp_path / "t10k-images-idx3-ubyte")).num_classes == 0


def test_unknown_source_names_the_choices():
    with pytest.raises(GanToolsError, match="digits, mnist, ring, grid"):
        load_source("imagenet")
    with pytest.raises(GanToolsError, match="2-D"):
        load_source("ring", image_size=8)


def test_unit_conversions_round_trip():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    np.testing.assert_array_equal(unit_to_uint8(images_to_unit(pixels)), pixels)


@pytest.mark.parametrize("spec", ["missing.npz", "no/such/folder", "gone.npy"])
def test_a_missing_path_is_reported_as_missing_not_as_an_unknown_source(tmp_path, spec):
    with pytest.raises(GanToolsError, match="no such file or folder"):
        load_source(str(tmp_path / spec) if "/" in spec else spec)


def test_an_unknown_name_lists_the_built_in_sources():
    with pytest.raises(GanToolsError, match="give one of digits, mnist, ring, grid"):
        load_source("digitz")


def test_16_bit_palette_and_rgba_images_become_8_bit_rgb(tmp_path):
    rng = np.random.default_rng(0)
    grey16 = rng.integers(0, 65536, (8, 8), dtype=np.uint16)
    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    Image.fromarray(grey16).save(tmp_path / "a16.png")
    Image.fromarray(rgba).save(tmp_path / "b_rgba.png")
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "c_pal.png")
    x, _ = load_source(str(tmp_path)).take()
    pixels = np.rint(x * 255).astype(np.int64).transpose(0, 2, 3, 1)  # files in sorted order
    np.testing.assert_array_equal(pixels[0], np.repeat(np.rint(grey16 / 257.0)[..., None], 3, axis=2))  # not clipped
    np.testing.assert_array_equal(pixels[1], rgba[..., :3])  # alpha dropped, as pytorch-fid reads it
    np.testing.assert_array_equal(pixels[2], np.asarray(Image.open(tmp_path / "c_pal.png").convert("RGB")))


def test_unreadable_images_are_named_or_skipped_when_asked(tmp_path, capsys):
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "text.png").write_text("not an image")
    whole = (tmp_path / "0.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(GanToolsError, match="cut.png"):
        load_source(str(tmp_path))
    src = load_source(str(tmp_path), skip_bad_images=True)
    assert len(src) == 4
    assert "skipped 2 unreadable image(s)" in capsys.readouterr().err


def test_samples_with_nan_or_inf_are_refused(tmp_path):
    x = np.zeros((6, 2), np.float32)
    x[3, 1] = np.inf
    np.savez(tmp_path / "p.npz", x=x)
    with pytest.raises(GanToolsError, match="1 of 6 samples hold NaN or Inf"):
        load_source(str(tmp_path / "p.npz"))


def _folder_layouts(root, name):
    """Folders whose whole-load and streamed reads must agree (see FolderStream)."""
    rng = np.random.default_rng(7)
    if name == "grey classes":  # every header grey: streamed, one channel
        for cls in ("a", "b", "c"):
            for i in range(4):
                _png(root / cls / f"{i}.png", rng.integers(0, 256, (9, 9), dtype=np.uint8))
    elif name == "colour":  # colour first: streamed, three channels, even with grey images later
        for i in range(9):
            _png(root / f"{i}.png", rng.integers(0, 256, (9, 9, 3), dtype=np.uint8))
        _png(root / "9.png", np.repeat(rng.integers(0, 256, (9, 9, 1), dtype=np.uint8), 3, axis=2))
        _png(root / "91.jpg", rng.integers(0, 256, (9, 9, 3), dtype=np.uint8))
    elif name == "grey stored as RGB":  # colour mode, grey pixels: only every pixel can tell, so loaded whole
        for i in range(7):
            _png(root / f"{i}.png", np.repeat(rng.integers(0, 256, (9, 9, 1), dtype=np.uint8), 3, axis=2))
    elif name == "16-bit, palette, RGBA":
        Image.fromarray(rng.integers(0, 65536, (9, 9), dtype=np.uint16)).save(root / "a16.png")
        Image.fromarray(rng.integers(0, 256, (9, 9, 4), dtype=np.uint8)).save(root / "b_rgba.png")
        Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).convert("P").save(root / "c_pal.png")
    elif name == "mixed sizes":  # with --image-size
        for i, (h, w) in enumerate([(9, 9), (12, 7), (5, 16), (9, 9), (30, 30)]):
            _png(root / f"{i}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "name, image_size, streamed",
    [
        ("grey classes", None, True),
        ("colour", None, True),
        ("grey stored as RGB", None, False),
        ("16-bit, palette, RGBA", None, False),
        ("16-bit, palette, RGBA", 6, False),
        ("mixed sizes", 8, True),
        ("grey classes", 12, True),
    ],
)
def test_a_streamed_folder_gives_the_samples_of_the_whole_folder_loaded(tmp_path, name, image_size, streamed):
    from gantools.data import FolderStream

    _folder_layouts(tmp_path, name)
    whole = load_source(str(tmp_path), image_size)
    stream = load_source(str(tmp_path), image_size, stream=True)
    assert isinstance(stream, FolderStream) == streamed
    assert (stream.sample_shape, len(stream), stream.class_names) == (whole.sample_shape, len(whole), whole.class_names)
    for n, seed, start, stop in [(None, 0, 0, None), (5, 3, 1, 4)]:
        got = list(stream.batches(2, n, seed, start, stop))
        expected = list(whole.batches(2, n, seed, start, stop))
        assert len(got) == len(expected)
        for (gx, gy), (ex, ey) in zip(got, expected, strict=True):
            np.testing.assert_array_equal(gx, ex)
            assert gx.dtype == np.float32 and (gy is None) == (ey is None)
            if ey is not None:
                np.testing.assert_array_equal(gy, ey)


def test_a_streamed_folder_is_fingerprinted_by_its_files_bytes(tmp_path):
    import shutil

    _folder_layouts(tmp_path / "a", "colour")
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    first = load_source(str(tmp_path / "a"), stream=True).fingerprint()
    assert load_source(str(tmp_path / "copy"), stream=True).fingerprint() == first
    assert load_source(str(tmp_path / "a"), stream=True).fingerprint(5, 0) != first
    assert load_source(str(tmp_path / "a"), 8, stream=True).fingerprint() != first  # resized: other samples
    im = np.asarray(Image.open(tmp_path / "copy" / "3.png")).copy()
    im[0, 0, 0] ^= 1
    _png(tmp_path / "copy" / "3.png", im)
    assert load_source(str(tmp_path / "copy"), stream=True).fingerprint() != first


def test_a_streamed_folder_decodes_the_next_batches_while_this_one_is_used(tmp_path, monkeypatch):
    """Batch 1 is decoded while the consumer still holds batch 0 (no clock involved: an event)."""
    import threading

    from gantools.data import FolderStream

    _folder_layouts(tmp_path, "colour")
    stream = load_source(str(tmp_path), stream=True)
    started = {i: threading.Event() for i in range(4)}
    decode = FolderStream._decode

    def watched(self, idx):
        started[int(idx[0]) // 3].set()
        return decode(self, idx)

    monkeypatch.setattr(FolderStream, "_decode", watched)
    batches = stream.batches(3)
    next(batches)
    assert started[1].wait(timeout=30) and started[2].wait(timeout=30)
    assert len(list(batches)) == 3


def test_a_file_that_fails_to_decode_past_its_header_stops_the_stream_naming_it(tmp_path):
    _folder_layouts(tmp_path, "colour")
    whole = (tmp_path / "5.png").read_bytes()
    (tmp_path / "5.png").write_bytes(whole[: len(whole) // 2])  # the header survives
    stream = load_source(str(tmp_path), stream=True)
    with pytest.raises(GanToolsError, match="5.png"):
        list(stream.batches(4))
