import numpy as np
import pytest
from conftest import ThreadRecorded, assert_usage_error, torch_sample_flops
from PIL import Image

from gantools.errors import GanToolsError
from gantools.generate import generate
from gantools.latents import labels_for, latents_for
from gantools.runtime import OnnxGenerator, sample_flops


def test_latents_depend_only_on_seed_and_index():
    whole = latents_for(3, 0, 20, 5)
    np.testing.assert_array_equal(latents_for(3, 7, 6, 5), whole[7:13])
    assert not np.array_equal(latents_for(4, 0, 20, 5), whole)
    assert abs(latents_for(0, 0, 4000, 8).std() - 1) < 0.02


@pytest.mark.parametrize(
    "seed, start, n, dim",
    [
        (0, 0, 6000, 64),  # ~2,500 samples leave the ziggurat's fast path somewhere: every hand-off is covered
        (7, 10**6, 4000, 4),
        (2**32 - 1, 2**32 - 3000, 3000, 7),  # the last one-word SeedSequence entropies, odd dimension
        (1, 2**32 - 5, 10, 3),  # crosses into two-word entropy: the direct definition takes over
        (5, 0, 800, 1),
    ],
)
def test_vectorised_latents_equal_one_numpy_generator_per_sample(seed, start, n, dim):
    """The definition: z_i = default_rng([seed, i]).standard_normal(dim, float32), bit for bit."""
    expected = np.stack(
        [np.random.default_rng([seed, i]).standard_normal(dim, dtype=np.float32) for i in range(start, start + n)]
    )
    np.testing.assert_array_equal(latents_for(seed, start, n, dim), expected)


@pytest.mark.parametrize("dim", [2, 16, 64])
def test_slow_lanes_gathered_over_chunks_land_on_their_own_rows(monkeypatch, dim):
    """With chunks of 256 samples and slow lanes finished once 32 have gathered (every ~4 chunks at 2-d, each
    chunk at 16-d and 64-d) and the rest at the end, the result is still the definition, row for row."""
    from gantools import latents

    monkeypatch.setattr(latents, "_CHUNK", 256)
    monkeypatch.setattr(latents, "_GATHER_VALUES", 32 * dim)
    n, start = 3017, 40
    expected = np.stack(
        [np.random.default_rng([9, i]).standard_normal(dim, dtype=np.float32) for i in range(start, start + n)]
    )
    np.testing.assert_array_equal(latents.latents_for(9, start, n, dim), expected)


def _draws_by_definition(seed, indices, dim, tail):
    z, u = np.empty((len(indices), dim), np.float32), np.empty(len(indices))
    for row, i in enumerate(indices):
        g = np.random.default_rng([seed, int(i), *(int(np.broadcast_to(w, len(indices))[row]) for w in tail)])
        z[row], u[row] = g.standard_normal(dim, dtype=np.float32), g.random()
    return z, u


@pytest.mark.parametrize(
    "seed, indices, dim, tail",
    [
        (0, np.arange(6000), 64, (0x5EF1, 3)),  # wedges, tails and close calls: every way a lane is finished
        (7, np.arange(0, 30000, 3), 4, (0xB0F1, 0)),  # spaced indices, an even dimension: no buffered half word
        (3, np.arange(5000)[::-1], 7, (1,)),  # odd dimension: random() skips the last output's unused half
        (2**32 - 1, np.arange(2**32 - 3000, 2**32), 5, (9, 99)),
        (1, np.array([5, 2**32 + 1, 3]), 3, (1, 2)),  # two-word entropy: the direct definition
        (4, np.arange(100), 2, (1, 2, 3)),  # more entropy words than SeedSequence's pool: the direct definition
        (6, np.tile(np.arange(300), 20), 16, (7, np.arange(20).repeat(300))),  # a tail word per index (mh's chains)
        (6, np.arange(50), 3, (np.arange(50) + 2**32 - 25, 1)),  # per-index tail words past 2**32: the definition
    ],
)
def test_latents_and_uniforms_equal_one_numpy_generator_per_index(seed, indices, dim, tail):
    """refine.py's candidates: default_rng([seed, i, *tail]).standard_normal(dim, float32), then its random()."""
    from gantools.latents import latents_and_uniforms

    z, u = latents_and_uniforms(seed, indices, dim, tail)
    expected_z, expected_u = _draws_by_definition(seed, indices, dim, tail)
    np.testing.assert_array_equal(z, expected_z)
    np.testing.assert_array_equal(u, expected_u)


def test_uniforms_of_slow_lanes_gathered_over_chunks_land_on_their_own_rows(monkeypatch):
    from gantools import latents

    monkeypatch.setattr(latents, "_CHUNK", 256)
    monkeypatch.setattr(latents, "_GATHER_VALUES", 32 * 16)
    indices = np.arange(40, 3057)
    z, u = latents.latents_and_uniforms(2, indices, 16, (5, 6))
    expected_z, expected_u = _draws_by_definition(2, indices, 16, (5, 6))
    np.testing.assert_array_equal(z, expected_z)
    np.testing.assert_array_equal(u, expected_u)


def test_wedge_draws_are_decided_without_numpy_except_the_tail_and_close_calls(monkeypatch):
    """Of ~2,500 samples whose draws leave the fast path (wedges accepted and rejected, tails), numpy finishes
    only those with a tail draw or a wedge test too close to call, and the result is still the definition."""
    from gantools import latents

    handed = []
    finish = latents._finish_by_numpy
    monkeypatch.setattr(
        latents,
        "_finish_by_numpy",
        lambda z, uniforms, lanes, by_numpy, *a: (handed.extend(by_numpy), finish(z, uniforms, lanes, by_numpy, *a)),
    )
    n, d = 6000, 64
    expected = np.stack([np.random.default_rng([0, i]).standard_normal(d, dtype=np.float32) for i in range(n)])
    np.testing.assert_array_equal(latents.latents_for(0, 0, n, d), expected)
    # a tail draw has probability (1 - ki[0] / 2**23) / 256 = 2.6e-4 per draw: ~100 of the 384,000 here
    assert 0 < len(handed) < 200


def test_ziggurat_tables_read_off_numpy_are_exact():
    """For each of the 256 layers: rabs = ki - 1 stays on numpy's fast path (returning rabs * wi), rabs = ki
    leaves it (numpy takes another word), judged by numpy itself from a bit-generator state we set. (A search
    that started at rabs = 1 once got layer 1, whose ki is 0, wrong.)"""
    from gantools.latents import _ziggurat_tables

    wi, ki, _ = _ziggurat_tables()
    bits = np.random.PCG64(1)
    gen, base = np.random.Generator(bits), bits.state

    def first_draw(word):
        bits.state = {**base, "has_uint32": 1, "uinteger": word}
        x = gen.standard_normal(dtype=np.float32)
        return x, bits.state["state"]["state"] == base["state"]["state"]

    for idx in range(256):
        if ki[idx] > 0:  # layer 1 has ki = 0: no draw takes its fast path
            x, fast = first_draw((int(ki[idx] - 1) << 9) | idx)
            assert fast and x == np.float32(ki[idx] - 1) * wi[idx]
        if ki[idx] < 1 << 23:
            assert not first_draw((int(ki[idx]) << 9) | idx)[1]


def test_labels_are_balanced_or_fixed():
    assert list(labels_for(8, 5, 10)) == [8, 9, 0, 1, 2]
    assert list(labels_for(0, 3, 10, fixed_class=4)) == [4, 4, 4]
    assert labels_for(0, 3, 0) is None


def _npz(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("name", ["dcgan", "cdcgan"])
def test_same_seed_same_samples_at_batch_sizes_7_and_64(exported, tmp_path, name):
    generate(exported[name], 100, tmp_path / "a.npz", seed=11, batch_size=7, progress=False, save_latents=True)
    generate(exported[name], 100, tmp_path / "b.npz", seed=11, batch_size=64, progress=False, save_latents=True)
    a, b = _npz(tmp_path / "a.npz"), _npz(tmp_path / "b.npz")
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["z"], latents_for(11, 0, 100, a["z"].shape[1]))
    assert a["x"].dtype == np.uint8 and a["x"].shape == (100, 8, 8, 1)
    if name == "cdcgan":
        np.testing.assert_array_equal(a["y"], np.arange(100) % 10)
    generate(exported[name], 100, tmp_path / "c.npz", seed=12, progress=False)
    assert not np.array_equal(_npz(tmp_path / "c.npz")["x"], a["x"])


def test_npz_pixels_are_the_generator_output(exported, tmp_path):
    g = OnnxGenerator(exported["dcgan"], "cpu")
    generate(exported["dcgan"], 9, tmp_path / "s.npz", seed=2, progress=False)
    x = g(latents_for(2, 0, 9, g.latent_dim))
    expected = np.rint((x + 1) / 2 * 255).clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(_npz(tmp_path / "s.npz")["x"], expected)


def test_png_folder_matches_npz_and_resume_finishes_the_set(exported, tmp_path):
    generate(exported["dcgan"], 30, tmp_path / "s.npz", seed=5, progress=False)
    folder = tmp_path / "pngs"
    report = generate(exported["dcgan"], 30, folder, seed=5, batch_size=8, progress=False)
    assert report.written == 30
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{i:06d}.png" for i in range(30)]
    x = _npz(tmp_path / "s.npz")["x"]
    for i in (0, 17, 29):
        np.testing.assert_array_equal(np.asarray(Image.open(folder / f"{i:06d}.png")), x[i, ..., 0])
    before = (folder / "000012.png").read_bytes()
    for i in (3, 12, 29):
        (folder / f"{i:06d}.png").unlink()
    report = generate(exported["dcgan"], 30, folder, seed=5, batch_size=8, resume=True, progress=False)
    assert report.written == 3 and report.skipped == 27
    assert (folder / "000012.png").read_bytes() == before
    assert not [p for p in folder.iterdir() if not p.name.endswith(".png") or p.name.startswith(".")]


def test_fixed_class_and_grid(exported, tmp_path):
    generate(exported["cdcgan"], 20, tmp_path / "s.npz", fixed_class=3, grid=tmp_path / "g.png", progress=False)
    assert set(_npz(tmp_path / "s.npz")["y"]) == {3}
    grid = Image.open(tmp_path / "g.png")
    assert grid.size[0] > 8 * 4 and grid.mode == "RGB"


def test_points_model_writes_float_npz(exported, tmp_path):
    generate(exported["ring"], 50, tmp_path / "p.npz", progress=False, grid=tmp_path / "scatter.png")
    x = _npz(tmp_path / "p.npz")["x"]
    assert x.shape == (50, 2) and x.dtype == np.float32
    width, height = Image.open(tmp_path / "scatter.png").size
    assert width == height >= 400  # a square plot: equal axes


def test_generation_errors(exported, tmp_path):
    with pytest.raises(GanToolsError, match="--class applies"):
        generate(exported["dcgan"], 4, tmp_path / "a.npz", fixed_class=1, progress=False)
    with pytest.raises(GanToolsError, match="0..9"):
        generate(exported["cdcgan"], 4, tmp_path / "a.npz", fixed_class=10, progress=False)
    with pytest.raises(GanToolsError, match=".npz"):
        generate(exported["ring"], 4, tmp_path / "folder", progress=False)
    with pytest.raises(GanToolsError, match="--save-latents"):
        generate(exported["dcgan"], 4, tmp_path / "folder", save_latents=True, progress=False)
    generate(exported["dcgan"], 4, tmp_path / "folder", progress=False)
    with pytest.raises(GanToolsError, match="--resume"):
        generate(exported["dcgan"], 4, tmp_path / "folder", progress=False)
    assert not (tmp_path / "a.npz").exists()


def test_bad_model_files(exported, tmp_path):
    with pytest.raises(GanToolsError, match="no such model"):
        OnnxGenerator(tmp_path / "missing.onnx")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(exported["dcgan"].read_bytes()[:5000])
    with pytest.raises(GanToolsError, match="not a valid ONNX"):
        OnnxGenerator(cut)
    with pytest.raises(GanToolsError, match="not a generator"):
        OnnxGenerator(exported["dcgan"].with_name("dcgan.disc.onnx"))
    foreign = tmp_path / "foreign.onnx"
    _plain_onnx(foreign)
    with pytest.raises(GanToolsError, match="not a gantools export"):
        OnnxGenerator(foreign)
    renamed = tmp_path / "renamed.onnx"
    _rename_input(exported["dcgan"], renamed)
    with pytest.raises(GanToolsError, match="expected inputs"):
        OnnxGenerator(renamed)


def test_run_batches_in_lanes_equals_one_session_batch_by_batch(exported, monkeypatch):
    """Batches of several sizes through three single-threaded lanes: each x is the main session's, in order."""
    import threading

    monkeypatch.setattr("gantools.threads.usable_cores", lambda: 3)
    g = OnnxGenerator(exported["cdcgan"], "cpu")
    ran_in = []
    for lane in g.lanes:
        lane.session = ThreadRecorded(lane.session, ran_in)
    assert len(g.lanes) == 3
    sizes = [64, 5, 1, 33, 64, 7, 2]
    firsts = np.cumsum([0] + sizes[:-1])
    inputs = [
        (latents_for(4, f, m, g.latent_dim), labels_for(f, m, g.num_classes))
        for f, m in zip(firsts, sizes, strict=True)
    ]
    out = list(g.run_batches(iter(inputs)))
    assert len(ran_in) == len(sizes) and threading.get_ident() not in ran_in
    for (z, y), (z_out, y_out, x) in zip(inputs, out, strict=True):
        assert z_out is z and y_out is y
        np.testing.assert_array_equal(x, g(z, y))
    list(g.run_batches(iter(inputs[2:])))  # a first batch of one sample: one session, no lanes
    assert len(ran_in) == len(sizes)


@pytest.mark.parametrize("name", ["ring", "cdcgan"])
def test_run_batches_takes_lanes_for_batches_with_enough_arithmetic(exported, monkeypatch, name):
    """A first batch just under LANE_MIN_FLOPS runs on the main session, one just over it in lanes."""
    from gantools.runtime import LANE_MIN_FLOPS

    monkeypatch.setattr("gantools.threads.usable_cores", lambda: 2)
    g = OnnxGenerator(exported[name], "cpu")
    ran_in = []
    for lane in g.lanes:
        lane.session = ThreadRecorded(lane.session, ran_in)
    under = int(LANE_MIN_FLOPS // g.sample_flops)
    for size, laned in ((under, 0), (under + 1, 1)):
        z = latents_for(0, 0, size, g.latent_dim)
        list(g.run_batches(iter([(z, labels_for(0, size, g.num_classes))])))
        assert len(ran_in) == laned, size


@pytest.mark.parametrize("name", ["ring", "dcgan", "cdcgan"])
def test_sample_flops_counts_what_torch_counts(runs, exported, name):
    """The ONNX file's arithmetic per sample equals PyTorch's FlopCounterMode count on the module it was exported
    from (these widths split no convolution; test_export checks a split one)."""
    assert sample_flops(exported[name]) == torch_sample_flops(runs[name])


@pytest.mark.parametrize("name", ["ring", "dcgan"])  # 64 of these DCGAN samples hold enough arithmetic for lanes
def test_a_generator_that_outputs_nan_stops_generate_and_score(cli, exported, tmp_path, name):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(exported[name]))
    weights = next(w for w in model.graph.initializer if numpy_helper.to_array(w).ndim == 2)
    weights.CopyFrom(
        numpy_helper.from_array(np.full(numpy_helper.to_array(weights).shape, np.nan, np.float32), weights.name)
    )
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    out = tmp_path / "x.npz"
    assert_usage_error(cli("generate", broken, "-n", "64", "-o", out, "-q"), "broken.onnx", "NaN")
    assert not out.exists()
    if name == "ring":
        assert_usage_error(cli("score", broken, "--real", "ring", "--metrics", "modes", "-q"), "NaN")


def _plain_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["b"])],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


def _rename_input(src, dst):
    import onnx

    model = onnx.load(str(src))
    model.graph.input[0].name = "latent"
    for node in model.graph.node:
        node.input[:] = ["latent" if i == "z" else i for i in node.input]
    onnx.save(model, str(dst))


def test_cuda_request_on_a_cpu_machine(exported):
    from gantools.runtime import cuda_unavailable_reason

    if cuda_unavailable_reason() is None:
        pytest.skip("this machine has CUDA")
    with pytest.raises(GanToolsError, match="--device cpu"):
        OnnxGenerator(exported["dcgan"], "cuda")
    assert OnnxGenerator(exported["dcgan"], "auto").provider == "cpu"


def test_inputs_made_ahead_in_a_pool_or_inline_are_the_same_batches(exported):
    """On a GPU the latents are made a block ahead in a worker; on the CPU inline: the batches are the same."""
    from concurrent.futures import ThreadPoolExecutor

    from gantools.generate import _inputs_ahead

    model = OnnxGenerator(exported["cdcgan"], "cpu")
    plan = [(first, min(7, 30 - first)) for first in range(0, 30, 7)]
    inline = list(_inputs_ahead(None, model, 5, None, plan))
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = list(_inputs_ahead(pool, model, 5, None, plan))
    assert [len(z) for z, _ in inline] == [7, 7, 7, 7, 2]
    for (z1, y1), (z2, y2) in zip(inline, ahead, strict=True):
        np.testing.assert_array_equal(z1, z2)
        np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(np.concatenate([z for z, _ in inline]), latents_for(5, 0, 30, model.latent_dim))
