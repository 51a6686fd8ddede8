import contextlib
import json
import os

import numpy as np
import pytest
import torch

import gantools.train as train_module
from gantools.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from gantools.data import ring_centers
from gantools.errors import GanToolsError
from gantools.recipes import RECIPES
from gantools.train import lr_factor, r1_weight, train

SMALL = dict(checkpoint_every=1000, sample_every=1000, log_every=2)


@pytest.mark.parametrize(
    "options",
    [
        dict(data="ring", model="mlp", loss="ns"),
        dict(data="grid", model="mlp", loss="wgan-gp", n_critic=2),
        dict(data="digits", model="mlp", loss="hinge", spectral_norm=True, conditional=True),
        dict(data="digits", model="dcgan", loss="ns", width=8),
        dict(data="digits", model="dcgan", loss="wgan-gp", width=8, image_size=16, n_critic=2),
        dict(data="digits", model="dcgan", loss="hinge", width=8, conditional=True, spectral_norm=True, ema=0.0),
    ],
)
def test_each_model_and_loss_trains_a_few_steps(tmp_path, options):
    ckpt = train(tmp_path / "run", progress=False, steps=4, **SMALL, **options)
    state = load_checkpoint(ckpt)
    assert state["step"] == 4
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
    assert (tmp_path / "run" / "samples" / "step_0000004.png").exists()
    assert (tmp_path / "run" / "loss.png").exists()


def test_run_directory_layout_and_config(runs):
    run = runs["dcgan"]
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "dcgan" and config["sample_shape"] == [1, 8, 8]
    recipe = RECIPES[("digits", "dcgan")]
    assert (config["lr"], config["beta1"], config["beta2"]) == (recipe["lr"], recipe["beta1"], recipe["beta2"])
    assert config["n_critic"] == 1 and config["kind"] == "image" and config["width"] == 8  # given wins
    assert not list(run.rglob("*.tmp"))


def test_checkpoint_loads_with_weights_only(runs):
    raw = torch.load(latest_checkpoint(runs["cdcgan"]), weights_only=True)
    assert {"generator", "discriminator", "generator_ema", "opt_g", "opt_d", "torch_rng", "config"} <= set(raw)
    config = raw["config"]  # the learning rate of the last step, 6 of 6
    expected = config["lr"] * lr_factor(config["lr_schedule"], config["steps"] - 1, config["steps"])
    assert raw["opt_d"]["param_groups"][0]["lr"] == pytest.approx(expected) and config["lr_schedule"] == "linear"


def _assert_same_state(a, b):
    for key in ("generator", "discriminator", "generator_ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for key in ("opt_g", "opt_d"):
        for pid, s in a[key]["state"].items():
            for name, value in s.items():
                assert torch.equal(value, b[key]["state"][pid][name]), (key, pid, name)


def _log_rows(run):
    return [
        {k: v for k, v in json.loads(line).items() if k != "seconds"}
        for line in (run / "log.jsonl").read_text().splitlines()
    ]


@pytest.mark.parametrize(
    "options",
    [
        dict(data="digits", model="dcgan", width=8, loss="wgan-gp", n_critic=2),
        dict(data="ring", model="mlp", loss="ns", conditional=True),
        dict(data="digits", model="dcgan", width=8, augment=0.5),
        dict(data="mnist", model="dcgan", width=8, precision="bf16"),
    ],
)
def test_interrupted_then_resumed_run_ends_with_the_same_weights(tmp_path, monkeypatch, options):
    opts = dict(steps=12, checkpoint_every=4, sample_every=3, log_every=3, **options)
    full = train(tmp_path / "full", progress=False, **opts)

    real_write_samples = train_module.write_samples

    def interrupt_at_step_9(G, config, source, path):
        if path.name == "step_0000009.png":
            raise KeyboardInterrupt
        real_write_samples(G, config, source, path)

    monkeypatch.setattr(train_module, "write_samples", interrupt_at_step_9)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "cut", progress=False, **opts)
    assert [p.name for p in list_checkpoints(tmp_path / "cut")] == ["step_0000004.pt", "step_0000008.pt"]
    monkeypatch.setattr(train_module, "write_samples", real_write_samples)
    resumed = train(tmp_path / "cut", resume=True, progress=False)

    _assert_same_state(load_checkpoint(full), load_checkpoint(resumed))
    assert _log_rows(tmp_path / "full") == _log_rows(tmp_path / "cut")


def test_resume_can_extend_steps_under_a_constant_learning_rate(tmp_path):
    opts = dict(data="ring", lr_schedule="constant", r1=1.0, r1_final=1.0, steps=8, **SMALL)
    full = train(tmp_path / "full", progress=False, **opts)
    train(tmp_path / "two", progress=False, **{**opts, "steps": 5})
    resumed = train(tmp_path / "two", resume=True, progress=False, steps=8)
    _assert_same_state(load_checkpoint(full), load_checkpoint(resumed))


def test_a_run_of_an_older_version_resumes_with_r1_on_every_fourth_step(tmp_path):
    """Runs made before r1_every was recorded applied R1 on every fourth D step; resuming one must keep that."""
    opts = dict(data="ring", lr_schedule="constant", r1=1.0, r1_final=1.0, r1_every=4, steps=8, **SMALL)
    full = train(tmp_path / "full", progress=False, **opts)
    train(tmp_path / "old", progress=False, **{**opts, "steps": 3})  # resumed before step 4, an R1 step
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["r1_every"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    resumed = train(tmp_path / "old", resume=True, progress=False, steps=8)
    _assert_same_state(load_checkpoint(full), load_checkpoint(resumed))


def test_resume_cannot_stretch_a_decaying_schedule(tmp_path):
    train(tmp_path / "r", progress=False, data="ring", lr_schedule="linear", steps=4, **SMALL)
    with pytest.raises(GanToolsError, match="decays over its own 4 steps"):
        train(tmp_path / "r", resume=True, progress=False, steps=8)


def test_learning_rate_schedules_are_pure_functions_of_the_step():
    assert [lr_factor("linear", t, 4) for t in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert lr_factor("cosine", 0, 10) == 1.0 and lr_factor("cosine", 5, 10) == pytest.approx(0.5)
    assert lr_factor("constant", 7, 8) == 1.0


@pytest.mark.parametrize(
    "options",
    [
        dict(data="ring", model="mlp", loss="ns", r1=0.0),
        dict(data="ring", model="mlp", loss="ns", r1=2.0, r1_final=2.0),
        dict(data="ring", model="mlp", loss="ns", r1=2.0, r1_final=2.0, r1_every=2),
        dict(data="digits", model="mlp", loss="hinge", conditional=True, r1=0.0),
        dict(data="digits", model="dcgan", width=8, loss="ns", r1=2.0, r1_final=2.0, r1_every=2, augment=0.5),
        dict(data="mnist", model="dcgan", width=8, loss="ns", r1=2.0, r1_final=2.0, r1_every=2, precision="bf16"),
    ],
)
def test_training_steps_are_the_gan_algorithm_written_out(tmp_path, options):
    """The loop against the algorithm written out (Goodfellow et al.'s, with Adam): D steps on real samples and
    on G's fakes (plus, every r1_every-th step, r1_every x the R1 penalty), then G steps through the updated D on
    fresh latents (and fresh uniform labels, conditional); two D passes here, where train makes one pass over both
    halves. With --augment, D sees every image, real or G's, through its own seeded augmentation, and R1 acts on
    the augmented real images. With --precision bf16 the passes run under bf16 autocast, the losses in fp32."""
    from gantools.augment import augment, draw_params
    from gantools.data import load_source
    from gantools.losses import d_loss, g_loss
    from gantools.models import build_models

    run = tmp_path / "run"
    state = load_checkpoint(train(run, progress=False, steps=5, ema=0.0, lr_schedule="constant", **SMALL, **options))
    config = json.loads((run / "config.json").read_text())
    source, seed, B, L = load_source(config["data"]), config["seed"], config["batch_size"], config["latent_dim"]
    torch.manual_seed(seed)
    G, D = build_models(config)
    opt_g, opt_d = (
        torch.optim.Adam(m.parameters(), lr=config["lr"], betas=(config["beta1"], config["beta2"])) for m in (G, D)
    )
    every = config["r1_every"]  # as recorded: the ring recipe's 4, or the option given

    def seen(images, stream):  # the augmentation config.json records: the option given, or a recipe's
        if not config["augment"]:
            return images
        params = draw_params(np.random.default_rng(stream), B, tuple(images.shape[2:]), config["augment"])
        return augment(images, torch.as_tensor(params))

    low = options.get("precision") == "bf16"

    def bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=low)

    for t in range(5):
        x, y = source.draw(B, seed, t)
        x = seen(torch.as_tensor(x, dtype=torch.float32), [seed, t, 3]).requires_grad_(True)
        y = torch.as_tensor(y) if config["conditional"] else None
        z = torch.as_tensor(np.random.default_rng([seed, t, 1]).standard_normal((B, L), dtype=np.float32))
        with bf16():
            fake = seen(G(z, y).detach(), [seed, t, 4])
            if low:  # bf16's rounding depends on the batch a convolution sees: train's one pass over both halves
                real_logits, fake_logits = (
                    D(torch.cat([x, fake]), None if y is None else torch.cat([y, y])).float().split(B)
                )
            else:
                real_logits, fake_logits = D(x, y), D(fake, y)
        loss = d_loss(config["loss"], real_logits, fake_logits)
        if t % every == 0:  # lazy R1 (StyleGAN2): every x gamma/2 E||grad_x D(x)||^2
            (grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
            loss = loss + every * options["r1"] / 2 * grad.flatten(1).pow(2).sum(dim=1).mean()
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        rng = np.random.default_rng([seed, t, 2])
        z = torch.as_tensor(rng.standard_normal((B, L), dtype=np.float32))
        y = torch.as_tensor(rng.integers(0, config["num_classes"], size=B)) if config["conditional"] else None
        opt_g.zero_grad()
        with bf16():
            fake_logits = D(seen(G(z, y), [seed, t, 5]), y).float()
        g_loss(config["loss"], fake_logits).backward()
        opt_g.step()
    for name, model in (("generator", G), ("discriminator", D)):
        for key, value in model.state_dict().items():
            # Adam moves a weight by about lr a step whatever its gradient's size, so the summation order's noise
            # can show as a few lr/100 (3.6e-6 at lr 2e-4, conditional digits); another algorithm, by lr or more
            torch.testing.assert_close(state[name][key], value, rtol=0, atol=config["lr"] / 20)


def test_r1_weight_decays_geometrically_from_r1_to_r1_final():
    decaying = dict(r1=1.0, r1_final=0.01, steps=100)
    assert r1_weight(decaying, 0) == 1.0 and r1_weight(decaying, 50) == pytest.approx(0.1)
    assert r1_weight(decaying, 100) == pytest.approx(0.01)
    assert r1_weight(dict(r1=0.5, r1_final=0.5, steps=100), 70) == 0.5
    assert r1_weight(dict(r1=0.0, r1_final=0.01, steps=100), 70) == 0.0


def test_built_in_data_sets_train_with_their_recipe_and_given_options_win(tmp_path):
    from gantools.recipes import CLASSIC

    train(tmp_path / "grid", progress=False, data="grid", steps=2, **SMALL)
    cfg = json.loads((tmp_path / "grid" / "config.json").read_text())
    assert cfg["recipe"] == "grid/mlp" and cfg["model"] == "mlp"
    assert {k: cfg[k] for k in RECIPES[("grid", "mlp")] if k != "steps"} == {
        k: v for k, v in RECIPES[("grid", "mlp")].items() if k != "steps"
    }
    train(tmp_path / "mine", progress=False, data="grid", steps=2, lr=5e-4, mixture=0, **SMALL)
    cfg = json.loads((tmp_path / "mine" / "config.json").read_text())
    assert cfg["lr"] == 5e-4 and cfg["mixture"] == 0 and cfg["r1"] == RECIPES[("grid", "mlp")]["r1"]
    np.save(tmp_path / "noise.npy", np.random.default_rng(0).integers(0, 256, (16, 8, 8), dtype=np.uint8))
    train(tmp_path / "folder", progress=False, data=str(tmp_path / "noise.npy"), steps=1, **SMALL)
    cfg = json.loads((tmp_path / "folder" / "config.json").read_text())
    assert cfg["recipe"] == "classic" and cfg["lr"] == CLASSIC["lr"] and cfg["levels"] == 0
    assert cfg["model"] == "mlp" and cfg["r1"] == 0.0


def test_conditional_models_get_their_own_recipe():
    from gantools.recipes import CONDITIONAL, recipe_settings

    cond, plain = recipe_settings("digits:train", None, True), recipe_settings("digits", "dcgan")
    assert cond["recipe"] == "digits/dcgan+conditional" and plain["recipe"] == "digits/dcgan"
    assert cond == {**plain, **CONDITIONAL[("digits", "dcgan")], "recipe": cond["recipe"]}
    assert cond["steps"] < plain["steps"]
    assert recipe_settings("ring", None, True)["recipe"] == "ring/mlp"  # no conditional variant: the plain one


def test_digits_generators_output_exactly_their_17_grey_levels(runs, exported):
    from gantools.latents import latents_for
    from gantools.runtime import OnnxGenerator

    cfg = json.loads((runs["dcgan"] / "config.json").read_text())
    assert cfg["levels"] == 17 and cfg["recipe"] == "digits/dcgan"
    g = OnnxGenerator(exported["dcgan"], "cpu")
    levels = (g(latents_for(0, 0, 64, g.latent_dim)).astype(np.float64) + 1) * 8
    assert np.array_equal(levels, np.round(levels))  # (x + 1) / 2 is k / 16 exactly, as digits / 16 is


def test_a_short_ring_run_finds_most_modes(tmp_path):
    """A smoke test of the ring recipe, cut to 1,500 steps: a collapsed generator covers one or two modes."""
    from gantools.export import checkpoint_to_modules
    from gantools.latents import latents_for
    from gantools.metrics.modes import mode_metrics

    ckpt = train(tmp_path / "ring", progress=False, data="ring", steps=1500, **SMALL)
    G, _ = checkpoint_to_modules(load_checkpoint(ckpt))
    cfg = load_checkpoint(ckpt)["config"]
    x = G(torch.from_numpy(latents_for(0, 0, 2500, cfg["latent_dim"]))).detach().numpy()
    got = mode_metrics(x, ring_centers(), 0.01)
    # 1,500 of 12,000 steps: every mode found and evenly fed, not yet settled within 3 sigma (about half of
    # the samples are: 0.47-0.52 seen across thread counts)
    assert got["modes"] >= 7 and got["reverse_kl"] <= 0.1 and got["hq_fraction"] >= 0.3, got


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = load_checkpoint(train(tmp_path / "a", progress=False, data="ring", steps=3, seed=5, **SMALL))
    b = load_checkpoint(train(tmp_path / "b", progress=False, data="ring", steps=3, seed=5, **SMALL))
    c = load_checkpoint(train(tmp_path / "c", progress=False, data="ring", steps=3, seed=6, **SMALL))
    _assert_same_state(a, b)
    assert not torch.equal(a["generator"]["net.0.weight"], c["generator"]["net.0.weight"])


def test_resume_passes_over_a_damaged_newest_checkpoint_and_ends_bit_identical(tmp_path, capsys):
    opts = dict(data="ring", steps=12, sample_every=100, log_every=2)
    full = load_checkpoint(train(tmp_path / "full", progress=False, **opts))
    run = tmp_path / "run"
    train(run, progress=False, **opts, checkpoint_every=4)
    list_checkpoints(run)[-1].unlink()  # as if killed after step 11: checkpoints 4 and 8 are there
    newest = list_checkpoints(run)[-1]
    newest.write_bytes(newest.read_bytes()[:2000])  # damaged after it was written (a disk, a copy)
    resumed = load_checkpoint(train(run, resume=True, progress=False))
    _assert_same_state(full, resumed)
    assert "step_0000008.pt" in capsys.readouterr().err
    lines = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert lines == list(range(2, 13, 2))  # the log reads as one run


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_nothing_half_made(tmp_path):
    with pytest.raises(GanToolsError, match="diverged by step 2.*lower --lr"):
        train(tmp_path / "r", progress=False, data="ring", steps=20, lr=1e30, **SMALL)
    assert not (tmp_path / "r").exists()  # no checkpoint was written: the run folder goes too


def test_checkpoints_keep_only_the_newest(tmp_path):
    train(
        tmp_path / "r", progress=False, data="ring", steps=10, checkpoint_every=2, keep=2, sample_every=100, log_every=5
    )
    assert [p.name for p in list_checkpoints(tmp_path / "r")] == ["step_0000008.pt", "step_0000010.pt"]


def test_training_errors(tmp_path, runs):
    with pytest.raises(GanToolsError, match="--conditional"):
        train(tmp_path / "b", progress=False, data=str(_unlabelled(tmp_path)), conditional=True, steps=1)
    with pytest.raises(GanToolsError, match="--resume"):
        train(runs["ring"], progress=False, data="ring", steps=1)
    with pytest.raises(GanToolsError, match="drop --loss"):
        train(runs["ring"], resume=True, progress=False, loss="hinge")
    with pytest.raises(GanToolsError, match="no config.json"):
        train(tmp_path / "nothing", resume=True, progress=False)
    with pytest.raises(GanToolsError, match="--model mlp"):
        train(tmp_path / "c", progress=False, data="ring", model="dcgan", steps=1)
    with pytest.raises(GanToolsError, match="--augment shifts and erases images; ring holds 2-D points"):
        train(tmp_path / "d", progress=False, data="ring", augment=0.5, steps=1)
    with pytest.raises(GanToolsError, match=r"--augment is a probability in \[0, 1\]"):
        train(tmp_path / "e", progress=False, data="digits", augment=1.5, steps=1)
    with pytest.raises(GanToolsError, match="--precision must be auto, fp32 or bf16, got 'fp16'"):
        train(tmp_path / "f", progress=False, data="digits", precision="fp16", steps=1)
    assert not any((tmp_path / name).exists() for name in "cdef")


def _unlabelled(tmp_path):
    path = tmp_path / "unlabelled.npy"
    np.save(path, np.zeros((4, 8, 8), np.uint8))
    return path


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_where_it_is_native_and_is_recorded(tmp_path, monkeypatch, native, expected):
    """The MNIST recipe's auto: bf16 where the device computes it natively, else fp32 (emulated bf16 is many
    times slower); config.json and the checkpoint record the choice, so a resumed run keeps its arithmetic."""
    monkeypatch.setattr(train_module, "native_bf16", lambda device: native)
    ckpt = train(tmp_path / "run", progress=False, data="mnist", width=8, steps=2, **SMALL)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == expected
    assert load_checkpoint(ckpt)["config"]["precision"] == expected


@pytest.mark.parametrize(
    "native, precision, warned", [(False, "bf16", True), (True, "bf16", False), (False, "auto", False)]
)
def test_bf16_forced_on_a_cpu_without_it_warns_once(tmp_path, monkeypatch, capsys, native, precision, warned):
    """Emulated bf16 trains many times slower than fp32: a user who forces it there is told at the start, and
    training goes on; auto, which picks fp32 there, says nothing."""
    monkeypatch.setattr(train_module, "native_bf16", lambda device: native)
    train(tmp_path / "run", progress=False, data="digits", width=8, steps=2, precision=precision, **SMALL)
    err = capsys.readouterr().err
    assert err.count("no native bf16") == (1 if warned else 0)
    assert (tmp_path / "run" / "config.json").exists()


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="needs Linux's /proc/cpuinfo")
def test_native_bf16_on_the_cpu_is_what_its_flags_say():
    from pathlib import Path

    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    expected = bool({"avx512_bf16", "amx_bf16"} & set(flags.split(":")[1].split()))
    assert train_module.native_bf16(torch.device("cpu")) == expected


def test_cuda_request_without_cuda_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(GanToolsError, match="--device cpu"):
        train(tmp_path / "r", progress=False, data="ring", steps=1, device="cuda", **SMALL)


def test_kill_9_then_resume_ends_bit_identical(tmp_path):
    """A real SIGKILL at an arbitrary moment after the first checkpoint, then `--resume` in a new process."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = [
        "train",
        "--data",
        "ring",
        "--steps",
        "200",
        "--checkpoint-every",
        "25",
        "--log-every",
        "10",
        "--sample-every",
        "100",
        "--keep",
        "20",
        "-q",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "gantools"]
    killed = subprocess.Popen([*run, *args, "--out", str(tmp_path / "cut")], env=env)
    deadline = time.monotonic() + 60
    while not (tmp_path / "cut" / "checkpoints" / "step_0000050.pt").exists():
        assert time.monotonic() < deadline and killed.poll() is None
        time.sleep(0.01)
    time.sleep(0.05)  # somewhere in the middle of later steps, perhaps mid-write
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "cut" / "checkpoints" / "step_0000200.pt").exists()  # killed before the end
    assert subprocess.run([*run, "train", "--resume", "--out", str(tmp_path / "cut"), "-q"], env=env).returncode == 0
    assert subprocess.run([*run, *args, "--out", str(tmp_path / "full")], env=env).returncode == 0
    _assert_same_state(
        load_checkpoint(list_checkpoints(tmp_path / "full")[-1]),
        load_checkpoint(list_checkpoints(tmp_path / "cut")[-1]),
    )
    assert _log_rows(tmp_path / "full") == _log_rows(tmp_path / "cut")


@contextlib.contextmanager
def _cpu_hog():
    """One competing CPU-bound process while inside."""
    import subprocess
    import sys

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def test_wait_policy_is_passive_only_when_another_process_is_busy(monkeypatch):
    """train-classifier and bf16 scoring let OpenMP threads spin on an idle machine and sleep when another
    process holds a core."""
    import time

    from gantools.threads import BUSY_CORES, busy_cores, choose_wait_policy

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with _cpu_hog():
        time.sleep(0.3)
        assert busy_cores() >= BUSY_CORES
        assert choose_wait_policy() == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice always wins
    assert choose_wait_policy() == "ACTIVE"


def test_others_busy_subtracts_this_process_and_divides_by_wall_time():
    from gantools.threads import others_busy

    # 2 s of wall time; all CPUs were busy 3.0 s, this process used 1.0 s of it: the others kept 1 core busy
    assert others_busy((10.0, 5.0, 100.0), (12.0, 6.0, 103.0)) == pytest.approx(1.0)
    assert others_busy((10.0, 5.0, 100.0), (12.0, 8.0, 103.0)) == 0.0  # only this process: never negative
    assert others_busy((10.0, 5.0, 100.0), (10.0, 5.0, 100.0)) == 0.0  # no time passed


@pytest.mark.parametrize(
    "others,cores,full,expected",
    [
        (0.0, 2, 2, 2),
        (0.49, 2, 2, 2),
        (0.5, 2, 2, 1),
        (1.0, 2, 2, 1),
        (2.0, 2, 2, 1),  # never below one
        (1.0, 16, 16, 15),
        (3.4, 16, 16, 13),
        (3.6, 16, 16, 12),  # a big machine gives up only the cores taken
        (1.0, 16, 8, 8),
        (9.0, 16, 8, 7),  # never above the count training started with
    ],
)
def test_threads_beside_leave_one_core_per_busy_core(others, cores, full, expected):
    from gantools.threads import threads_beside

    assert threads_beside(others, cores, full) == expected


def test_load_watch_fits_threads_to_the_free_cores_and_restores_them(monkeypatch):
    """The decisions, with the samples given: on 2 cores a window with a competing core -> 1 thread, a quiet
    one -> back; on 4 cores, 2 busy cores -> 2 threads."""
    import gantools.threads as threads

    start = torch.get_num_threads()
    for cores, load in (
        (2, ((1.0, 1), (1.0, None), (0.0, 2), (0.3, None), (0.6, 1))),
        (4, ((2.0, 2), (1.0, 3), (0.2, 4), (3.0, 1))),
    ):
        watch = threads.LoadWatch(cores, cores)
        clock = {"wall": watch._last[0], "own": watch._last[1], "busy": watch._last[2]}
        monkeypatch.setattr(watch, "_clock", lambda clock=clock: clock["wall"])
        monkeypatch.setattr(watch, "_sample", lambda clock=clock: (clock["wall"], clock["own"], clock["busy"]))
        try:
            assert watch.poll() is None  # inside the first window: nothing measured yet
            for others, expected in load:
                clock["wall"] += threads.WATCH_SECONDS
                clock["own"] += threads.WATCH_SECONDS  # this process kept one core busy
                clock["busy"] += threads.WATCH_SECONDS * (1 + others)
                assert watch.poll() == expected
                assert torch.get_num_threads() == watch.current
        finally:
            watch.close()
        assert torch.get_num_threads() == cores
    torch.set_num_threads(start)


def test_load_watch_is_off_where_the_user_or_torchrun_decides_threads(monkeypatch):
    from gantools.threads import LoadWatch

    for name in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the start probe may see load: keep ours
    assert LoadWatch.for_training(on_cpu=True, processes=1) is not None
    assert LoadWatch.for_training(on_cpu=False, processes=1) is None  # CUDA
    assert LoadWatch.for_training(on_cpu=True, processes=2) is None  # torchrun: each rank has its share
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's thread count stands
    assert LoadWatch.for_training(on_cpu=True, processes=1) is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # the user's wait policy: threads as they are
    assert LoadWatch.for_training(on_cpu=True, processes=1) is None


def _env_without_openmp() -> dict:
    """Our environment without OpenMP or MKL settings: gantools picks the threads and asks MKL itself."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_CBWR")}


def _train_process(out, *args):
    """`gantools train ARGS --out OUT -q` in a new process that picks its own threads; the exit code."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "gantools", "train", *map(str, args), "--out", str(out), "-q"], env=_env_without_openmp()
    ).returncode


def test_the_recipes_train_the_same_weights_at_one_and_two_threads(tmp_path, monkeypatch):
    """The thread counts gantools picks on a 2-core machine, idle or beside another process, change no bit of
    a recipe's training: the digits DCGAN (convolutions, lazy R1's double backward, a one-channel output whose
    fused bias gradient oneDNN would split by thread), the ring MLP, and the MNIST DCGAN in bf16. (From 3
    threads on, PyTorch splits more gradient sums by thread: threads.py.)"""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # no LoadWatch: the count set here stays
    start = torch.get_num_threads()
    try:
        for data, steps, options in (("digits", 8, {}), ("ring", 30, {}), ("mnist", 6, {"precision": "bf16"})):
            states = []
            for n in (1, 2):
                torch.set_num_threads(n)
                ckpt = train(tmp_path / f"{data}{n}", data=data, steps=steps, progress=False, **options)
                assert json.loads((tmp_path / f"{data}{n}" / "config.json").read_text())["torch_threads"] == n
                states.append(load_checkpoint(ckpt))
            _assert_same_state(*states)
    finally:
        torch.set_num_threads(start)


@pytest.mark.skipif(not os.path.exists("/proc/stat") or (os.cpu_count() or 1) < 2, reason="needs Linux, 2+ cores")
def test_load_that_starts_mid_run_makes_training_use_fewer_threads_and_log_it(tmp_path):
    """Real processes: training starts on a quiet machine (all its threads), then a CPU hog starts; within a
    minute the log records a drop to fewer threads."""
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gantools",
            "train",
            "--data",
            "ring",
            "--steps",
            "100000",
            "--log-every",
            "50",
            "--checkpoint-every",
            "100000",
            "--out",
            str(run),
            "-q",
        ],
        env=_env_without_openmp(),
    )
    try:
        deadline = time.monotonic() + 60
        while not (run / "log.jsonl").exists() and time.monotonic() < deadline:  # training has started
            time.sleep(0.2)
        full = json.loads((run / "config.json").read_text())["torch_threads"]
        if full < torch.get_num_threads():
            pytest.skip("the machine was busy as training started (fewer threads chosen): no drop to watch for")
        rows = []
        with _cpu_hog():
            while time.monotonic() < deadline and not any(r.get("torch_threads", full) < full for r in rows):
                time.sleep(0.5)
                rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    finally:
        job.kill()
        job.wait()
    assert any(r.get("torch_threads", full) < full for r in rows), rows[-3:]


@pytest.mark.skipif(not os.path.exists("/proc/stat") or torch.get_num_threads() < 2, reason="needs Linux, 2+ threads")
def test_training_beside_a_cpu_hog_uses_fewer_threads_and_gives_bit_identical_weights(tmp_path):
    """Another process takes a core from the start: gantools train starts with a thread fewer (a spinning
    thread that waits for a descheduled partner is what collapses speed under load), and the digits recipe's
    weights are the same as on a quiet machine (on 2 cores: 1 thread against 2)."""
    from gantools.threads import usable_cores

    args = ["--data", "digits", "--steps", "30", "--log-every", "10"]  # the recipe's shapes: same bits at 1 and 2
    assert _train_process(tmp_path / "idle", *args) == 0
    with _cpu_hog():
        assert _train_process(tmp_path / "loaded", *args) == 0
    loaded = json.loads((tmp_path / "loaded" / "config.json").read_text())
    assert loaded["omp_wait_policy"] == "default"  # no PASSIVE: libgomp's spinning stays, with fewer threads
    assert loaded["torch_threads"] <= max(1, min(torch.get_num_threads(), usable_cores() - 1))
    _assert_same_state(
        load_checkpoint(latest_checkpoint(tmp_path / "idle")), load_checkpoint(latest_checkpoint(tmp_path / "loaded"))
    )
