"""Property-based tests (hypothesis): the image and array loaders, and the metrics' invariances."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from gantools.data import load_source
from gantools.errors import GanToolsError
from gantools.metrics import features_to_stats, frechet_distance, mode_metrics, prdc
from gantools.metrics.stats import StreamingStats

FILES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MATH = settings(max_examples=40, deadline=None)


@st.composite
def pictures(draw):
    """(mode, pixels as stored, the RGB or grey values the loader must give)."""
    n, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "I;16"]))
    if mode == "I;16":
        pixels = draw(arrays(np.uint16, (n, h, w)))
        return mode, pixels, np.rint(pixels / 257.0).astype(np.uint8)[..., None]
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = draw(arrays(np.uint8, (n, h, w, channels)))
    expected = pixels[..., :3] if channels > 1 else pixels
    return mode, pixels, expected


@FILES
@given(pictures())
def test_png_folders_load_to_their_pixels(tmp_path_factory, picture):
    """Grey, RGB, RGBA (alpha dropped) and 16-bit grey (scaled to 8 bits) PNGs load to the values they hold."""
    mode, pixels, expected = picture
    folder = tmp_path_factory.mktemp("png")
    for i, p in enumerate(pixels):
        Image.fromarray(p[..., 0] if mode == "L" else p).save(folder / f"{i:03d}.png")  # uint16 2-D: I;16
    x = load_source(str(folder)).x
    if expected.shape[-1] == 3 and all(np.array_equal(expected[..., 0], expected[..., c]) for c in (1, 2)):
        expected = expected[..., :1]  # every image grey: one channel kept
    np.testing.assert_array_equal(x, expected)


@st.composite
def image_arrays(draw):
    """(array as a user stores it, NHWC float in [0, 1] it must load to)."""
    n, h, w = draw(st.integers(1, 5)), draw(st.integers(2, 8)), draw(st.integers(2, 8))
    c = draw(st.sampled_from([1, 3]))
    kind = draw(st.sampled_from(["uint8", "unit", "signed"]))
    if kind == "uint8":
        nhwc = draw(arrays(np.uint8, (n, h, w, c)))
        unit = nhwc.astype(np.float32) / 255
    else:
        nhwc = draw(arrays(np.float32, (n, h, w, c), elements=st.floats(0, 1, width=32)))
        unit = nhwc
        if kind == "signed":
            nhwc = nhwc * np.float32(2) - np.float32(1)
            unit = (nhwc + np.float32(1)) / np.float32(2)
    layout = draw(st.sampled_from(["nhwc", "nchw"] + (["nhw"] if c == 1 else [])))
    stored = {"nhwc": nhwc, "nchw": nhwc.transpose(0, 3, 1, 2), "nhw": nhwc[..., 0]}[layout]
    if layout == "nchw" and w in (1, 3):
        stored = None  # ambiguous channel axis by construction: not this property's concern
    if kind == "signed" and nhwc.min() >= 0:
        stored = None  # [-1, 1] values that all lie in [0, 1] read as [0, 1]: ambiguous by construction too
    return stored, unit


@FILES
@given(image_arrays())
def test_npz_images_load_in_any_layout_and_range(tmp_path_factory, case):
    stored, unit = case
    if stored is None:
        return
    path = tmp_path_factory.mktemp("npz") / "x.npz"
    np.savez(path, x=stored)
    source = load_source(str(path))
    got = source.x.astype(np.float32) / 255 if source.x.dtype == np.uint8 else source.x
    np.testing.assert_allclose(got, unit, atol=1e-6)


@FILES
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(2, 6), st.integers(2, 6)),
        elements=st.floats(0, 1, width=32),
    ),
    st.sampled_from([np.nan, np.inf, -np.inf]),
)
def test_non_finite_arrays_are_refused(tmp_path_factory, x, bad):
    x = x.copy()
    x.flat[len(x.flat) // 2] = bad
    path = tmp_path_factory.mktemp("bad") / "x.npz"
    np.savez(path, x=x)
    with pytest.raises(GanToolsError):
        load_source(str(path))


@st.composite
def feature_sets(draw, dim_max=6):
    d = draw(st.integers(1, dim_max))
    n, m = draw(st.integers(d + 2, 40)), draw(st.integers(d + 2, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * rng.uniform(0.1, 3, d), rng.standard_normal((m, d)) + rng.uniform(-1, 1, d)


@MATH
@given(feature_sets(), st.data())
def test_fid_ignores_sample_order_and_batching_and_is_symmetric(sets, data):
    a, b = sets
    perm = data.draw(st.permutations(range(len(a))))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(a)), max_size=4)))
    acc = StreamingStats(a.shape[1])
    for lo, hi in zip([0, *cuts], [*cuts, len(a)], strict=True):
        acc.update(a[list(perm)][lo:hi])
    ref = frechet_distance(*features_to_stats(a), *features_to_stats(b))
    assert frechet_distance(acc.mean, acc.cov, *features_to_stats(b)) == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert frechet_distance(*features_to_stats(b), *features_to_stats(a)) == pytest.approx(ref, rel=1e-9, abs=1e-9)


@MATH
@given(feature_sets(dim_max=8), st.data())
def test_prdc_ignores_sample_order(sets, data):
    real, fake = sets
    p, q = data.draw(st.permutations(range(len(real)))), data.draw(st.permutations(range(len(fake))))
    k = min(3, len(real) - 1, len(fake) - 1)
    a, b = prdc(real, fake, k, k), prdc(real[list(p)], fake[list(q)], k, k)
    assert a == pytest.approx(b, abs=1e-12)


@MATH
@given(st.integers(0, 2**32 - 1), st.integers(1, 300))
def test_mode_metrics_ignore_sample_order(seed, n):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-2, 2, (5, 2))
    points = centers[rng.integers(0, 5, n)] + rng.normal(0, 0.05, (n, 2))
    a, b = mode_metrics(points, centers, 0.05), mode_metrics(points[rng.permutation(n)], centers, 0.05)
    assert a == pytest.approx(b, abs=1e-12)
