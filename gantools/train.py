"""The training loop: seeded, checkpointed, resumable to the same weights.

Every random draw of step t (the real batch, the latents, the WGAN-GP
interpolation weights) comes from a generator seeded with (seed, t), so a
run is a pure function of its config: resuming from a checkpoint replays
exactly the batches an uninterrupted run would have seen.

A run directory holds:
  config.json        the resolved configuration
  checkpoints/       step_NNNNNNN.pt (state dicts, optimizer and RNG state)
  log.jsonl          one line of mean losses every `log_every` steps (and torch_threads when
                     load that appeared mid-run changed it: threads.py)
  samples/           step_NNNNNNN.png from fixed latents every `sample_every` steps
  loss.png           the loss and D-output curves, drawn at the end
  report.html        the run on one self-contained page (gantools report), written at the end

Under torchrun (DDP) --batch-size stays the global batch: every rank draws
step t's whole batch of indices and latents and trains on its slice of the
rows, and DDP averages the gradients, so a run without batch statistics
follows the one-process run to float rounding. Rank 0 alone writes files.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from .errors import GanToolsError
from .files import write_text_atomic
from .train_config import TrainConfig

# Options that may differ when resuming: they change neither the weights nor the batches.
RESUMABLE_OPTIONS = ("steps", "device", "checkpoint_every", "sample_every", "log_every", "keep", "tensorboard")


LR_SCHEDULES = ("constant", "linear", "cosine")
STRETCH, COMMON_EXTREME = 1.25, 0.1  # an 8-bit output is stretched (1.25) on a side where >= 10% of pixels lie


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The learning-rate multiplier at `step` of `steps`: a pure function, so resuming needs no state."""
    if schedule == "constant":
        return 1.0
    u = step / steps
    return 1.0 - u if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * u))


def _r1_decays(config: dict) -> bool:
    return config.get("r1", 0.0) not in (0.0, config.get("r1_final", config.get("r1")))


def r1_weight(config: dict, step: int) -> float:
    """gamma at `step`: r1, decaying geometrically to r1_final at the end (strong smoothing while the
    generator's mass travels between modes, little once it must settle precisely on them)."""
    first, final = config["r1"], config["r1_final"]
    return first * (final / first) ** (step / config["steps"]) if _r1_decays(config) else first


def _step_dependent(config: dict) -> bool:
    """Whether the run's schedules are stretched over its --steps (so a resume cannot change them)."""
    return config.get("lr_schedule", "constant") != "constant" or _r1_decays(config)


def _check_options(c: dict) -> None:
    from .losses import LOSSES
    from .models import G_NORMS

    if c["loss"] not in LOSSES:
        raise GanToolsError(f"--loss must be one of {', '.join(LOSSES)}, got {c['loss']!r}")
    if c["g_norm"] not in G_NORMS:
        raise GanToolsError(f"--g-norm must be one of {', '.join(G_NORMS)}, got {c['g_norm']!r}")
    if c["lr_schedule"] not in LR_SCHEDULES:
        raise GanToolsError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {c['lr_schedule']!r}")
    positive = (
        "steps",
        "batch_size",
        "latent_dim",
        "r1_every",
        "checkpoint_every",
        "sample_every",
        "log_every",
        "keep",
    )
    for name in positive:
        if c[name] < 1:
            raise GanToolsError(f"--{name.replace('_', '-')} must be at least 1, got {c[name]}")
    if c["n_critic"] < 1:
        raise GanToolsError(f"--n-critic must be at least 1, got {c['n_critic']}")
    if c["width"] < 2:
        raise GanToolsError(f"--width must be at least 2, got {c['width']}")
    if c["mixture"] < 0 or c["mixture"] == 1:
        raise GanToolsError(f"--mixture takes 0 (off) or at least 2 components, got {c['mixture']}")
    if c["mixture"] and c["latent_dim"] < 2:
        raise GanToolsError("--mixture takes one latent coordinate to pick a component: use --latent-dim 2 or more")
    if c["levels"] < 0 or c["levels"] == 1 or c["levels"] > 256:
        raise GanToolsError(f"--levels takes 0 (continuous) or 2..256, got {c['levels']}")
    for name in ("lr", "r1", "r1_final", "gp_weight"):
        if not math.isfinite(c[name]):
            raise GanToolsError(f"--{name.replace('_', '-')} must be a finite number, got {c[name]}")
    if not c["lr"] > 0:
        raise GanToolsError(f"--lr must be positive, got {c['lr']}")
    if c["r1"] < 0 or c["gp_weight"] < 0:
        raise GanToolsError("--r1 and --gp-weight must be non-negative")
    if c["r1"] > 0 and not c["r1_final"] > 0:
        raise GanToolsError(f"--r1-final must be positive (the penalty decays geometrically), got {c['r1_final']}")
    if not (0 <= c["beta1"] < 1 and 0 <= c["beta2"] < 1):
        raise GanToolsError("--beta1 and --beta2 must lie in [0, 1)")
    if not 0 <= c["augment"] <= 1:
        raise GanToolsError(f"--augment is a probability in [0, 1] (0 turns it off), got {c['augment']}")
    if c["precision"] not in ("auto", "fp32", "bf16"):
        raise GanToolsError(f"--precision must be auto, fp32 or bf16, got {c['precision']!r}")
    if not 0 <= c["ema"] < 1:
        raise GanToolsError(f"--ema must lie in [0, 1) (0 turns it off), got {c['ema']}")
    if c["seed"] < 0:
        raise GanToolsError(f"--seed must be non-negative, got {c['seed']}")
    if c["device"] not in ("auto", "cpu", "cuda"):
        raise GanToolsError(f"--device must be auto, cpu or cuda, got {c['device']!r}")


def _check_options_fit(cfg: TrainConfig, c: dict, source) -> None:
    """Refuse options given for a model or data they do not act on (silently ignoring them misleads)."""
    from .data import ArraySource

    if cfg.g_norm is not None and c["model"] != "dcgan":
        raise GanToolsError("--g-norm sets the dcgan generator's normalisation; drop it for --model mlp")
    if cfg.augment and source.kind != "image":
        raise GanToolsError(f"--augment shifts and erases images; {cfg.data} holds 2-D points, drop it")
    if cfg.levels is not None and source.kind != "image":
        raise GanToolsError(f"--levels rounds generated pixels; {cfg.data} holds 2-D points, drop it")
    for name in ("r1_final", "r1_every"):
        if getattr(cfg, name) is not None and not c["r1"]:
            flag = "--" + name.replace("_", "-")
            raise GanToolsError(f"{flag} shapes the R1 penalty, which is off: give --r1 too, or drop {flag}")
    if isinstance(source, ArraySource) and len(source) < 2:
        raise GanToolsError(f"{cfg.data} holds {len(source)} sample; a GAN learns a distribution from many")


def resolve_config(cfg: TrainConfig, source) -> dict:
    """The config as saved in config.json: the recipe, then the options given, plus what the data implies."""
    from . import __version__
    from .data import extreme_shares, grey_levels, point_standardisation
    from .models import FEW_LEVELS, check_model_fits
    from .recipes import recipe_settings

    out = recipe_settings(cfg.data, cfg.model, bool(cfg.conditional))
    out.update({k: v for k, v in dataclasses.asdict(cfg).items() if v is not None or k not in out})
    out["n_critic"] = out.get("n_critic") or (5 if out["loss"] == "wgan-gp" else 1)
    if out.get("r1_final") is None:
        out["r1_final"] = out["r1"]
    if out.get("gp_weight") is None:
        out["gp_weight"] = 10.0 if out["loss"] == "wgan-gp" else 0.0
    out["width"] = out.get("width") or (128 if out["model"] == "mlp" else 64)
    if out.get("levels") is None:  # neither given nor the recipe's: the data's own grey levels, if few
        out["levels"] = grey_levels(source)
    if out["levels"] > FEW_LEVELS and source.kind == "image":  # 8-bit output: stretch the sides where data lies
        out["stretch"] = [STRETCH if share >= COMMON_EXTREME else 1.0 for share in extreme_shares(source)]
    _check_options(out)
    check_model_fits(out["model"], source.kind, source.sample_shape)  # also checks the model name
    if cfg.conditional and not source.num_classes:
        raise GanToolsError(f"--conditional needs labelled data, and {cfg.data} has no labels")
    if source.kind == "points":
        out["point_center"], out["point_scale"] = point_standardisation(source)
    out.update(
        kind=source.kind,
        sample_shape=list(source.sample_shape),
        num_classes=source.num_classes if cfg.conditional else 0,
        class_names=list(source.class_names) if cfg.conditional else [],
        gantools_version=__version__,
    )
    return out


def _pick_device(name: str):
    """The torch device for --device; under torchrun on CUDA, the GPU of this process's local rank."""
    import torch

    from .distributed import launched_size, local_rank

    if name == "cuda" and not torch.cuda.is_available():
        raise GanToolsError("--device cuda was asked for, but PyTorch sees no CUDA device; use --device cpu")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda", local_rank() if launched_size() > 1 else torch.cuda.current_device())
    torch.cuda.set_device(device)
    return device


def native_bf16(device) -> bool:
    """Whether `device` computes bf16 natively (a GPU with bf16; a CPU with AVX512-BF16 or AMX): elsewhere it
    is emulated, and bf16 training is many times slower than fp32 (bench/README.md)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's, private: absent means no
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def _distribute(G, D, device, world):
    """(G, D) as run by this rank: DDP-wrapped under torchrun (BatchNorm synchronised on CUDA).

    PyTorch's SyncBatchNorm runs on CUDA only, so on CPU a BatchNorm generator
    normalises with its rank's slice of the batch; rank 0's running statistics
    are broadcast (DDP's broadcast_buffers). D's spectral-norm vectors are the
    same on every rank, and broadcasting them in place would break autograd.
    """
    import inspect
    import warnings

    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    if world.size == 1:
        return G, D
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in G.modules())
    if has_bn and device.type == "cuda":
        G = torch.nn.SyncBatchNorm.convert_sync_batchnorm(G)
    elif has_bn and world.main:
        print(
            "gantools: note: BatchNorm statistics are per process on CPU (SyncBatchNorm needs CUDA); "
            "use --g-norm none for results independent of the number of processes",
            file=sys.stderr,
        )
    ids = [device.index] if device.type == "cuda" else None
    # a [1, n] weight's gradient may come with strides (1, 1): the same memory layout, a needless warning
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    newer = "forward_sync_buffers" in inspect.signature(DDP).parameters  # broadcast_buffers is deprecated there
    return DDP(G, device_ids=ids), DDP(
        D, device_ids=ids, **{"forward_sync_buffers" if newer else "broadcast_buffers": False}
    )


def _start_run(out: Path, options: dict, resume: bool):
    """(config dict, source, checkpoints to resume from, oldest first, or None) for a new or resumed run."""
    from .checkpoint import list_checkpoints, read_run_config
    from .data import load_source
    from .distributed import launched_size
    from .recipes import CLASSIC

    cfg_path = out / "config.json"
    if resume:
        if not cfg_path.exists():
            raise GanToolsError(f"--resume: {out} holds no config.json; is it a gantools run directory?")
        saved = read_run_config(out)
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        changed = [k for k, v in options.items() if k not in RESUMABLE_OPTIONS and v != saved.get(k)]
        if changed:
            names = ", ".join("--" + k.replace("_", "-") for k in changed)
            raise GanToolsError(f"--resume keeps the run's own settings; drop {names} (or start a new --out)")
        if "steps" in options and options["steps"] != saved["steps"] and _step_dependent(saved):
            raise GanToolsError(
                f"--resume --steps: the run's learning-rate or R1 schedule decays over its own "
                f"{saved['steps']} steps; resume without --steps, or start a new run"
            )
        merged = {
            **CLASSIC,
            "levels": 0,
            "gp_weight": 10.0 if saved.get("loss") == "wgan-gp" else 0.0,
            "r1_final": saved.get("r1", 0.0),
            "r1_every": 4,
        }
        # (settings that runs of older versions did not record)
        merged.update({k: v for k, v in saved.items() if k in fields})
        merged.update({k: options[k] for k in RESUMABLE_OPTIONS if k in options})
        cfg = TrainConfig(**merged)
        ckpts = list_checkpoints(out) or None
    else:
        if out.exists() and any(out.iterdir()):
            raise GanToolsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        unknown = set(options) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise TypeError(f"unknown training options: {sorted(unknown)}")
        cfg = TrainConfig(**options)
        ckpts = None
    if cfg.tensorboard:
        _tensorboard_writer()  # a missing package is reported before any work
    source = load_source(cfg.data, cfg.image_size, cfg.skip_bad_images)
    config = resolve_config(cfg, source)
    if not resume:  # a resumed run's config holds every setting, given or not
        _check_options_fit(cfg, config, source)
    ranks = launched_size()
    if config["batch_size"] % ranks:
        raise GanToolsError(
            f"--batch-size {config['batch_size']} is the global batch and must split evenly over "
            f"the {ranks} processes: give a multiple of {ranks}"
        )
    if resume and saved.get("sample_shape") != config["sample_shape"]:
        raise GanToolsError(f"--resume: the data {cfg.data} no longer has the shape the run was trained on")
    return config, source, ckpts


def _load_newest_whole(ckpts, G, D, G_ema, opt_g, opt_d):
    """(path, state) of the newest checkpoint that loads whole into the models, optimisers and RNG.

    Checkpoints are written atomically, so a damaged one was damaged afterwards (a disk, a copy): resuming
    from the one before it loses a few steps, not the run, and stays exactly reproducible."""
    import torch

    from .checkpoint import checkpoint_fits, load_checkpoint

    *older, path = ckpts
    try:
        state = load_checkpoint(path)
        with checkpoint_fits(path):
            for module, key in (
                (G, "generator"),
                (D, "discriminator"),
                (G_ema, "generator_ema"),
                (opt_g, "opt_g"),
                (opt_d, "opt_d"),
            ):
                module.load_state_dict(state[key])
            torch.set_rng_state(state["torch_rng"])
            missing = [key for key in ("step", "d_stats", "log_partial") if key not in state]
            if missing:
                raise GanToolsError(f"it lacks {', '.join(missing)}")
        return path, state
    except GanToolsError as exc:
        if not older:
            raise
        print(f"gantools: warning: {exc}; resuming from the checkpoint before it", file=sys.stderr)
        return _load_newest_whole(older, G, D, G_ema, opt_g, opt_d)


def train(out, *, resume: bool = False, progress: bool = True, **options) -> Path:
    """Train a GAN into run directory `out`; return the final checkpoint's path (None on ranks other than 0).

    `options` are TrainConfig fields. With resume=True, training continues from
    the newest checkpoint in `out` under the saved config (only the options in
    RESUMABLE_OPTIONS may change, e.g. a larger `steps`, or the number of processes).
    """
    from .threads import ask_mkl_for_reproducible_sums

    ask_mkl_for_reproducible_sums()  # before torch computes: the weights must not depend on the thread count
    out = Path(out)
    config, source, ckpts = _start_run(out, options, resume)
    try:
        return _train_from(out, config, source, ckpts, progress)
    except BaseException:
        _remove_if_no_checkpoint(out, resume)
        raise


def _remove_if_no_checkpoint(out: Path, resume: bool) -> None:
    """A new run that failed before its first checkpoint leaves nothing (it holds nothing to resume from)."""
    import shutil

    from .checkpoint import list_checkpoints

    rank0 = os.environ.get("RANK", "0") in ("", "0")  # not current(): it may not have joined the group yet
    if not resume and rank0 and out.is_dir() and not list_checkpoints(out):
        for entry in out.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        out.rmdir()


def _train_from(out: Path, config: dict, source, ckpts, progress: bool):
    """Train from the start, or from the newest whole one of checkpoints `ckpts` (oldest first), to config's
    steps, with PyTorch's thread count fitted to the free cores while it runs (threads.py)."""
    from .distributed import current
    from .threads import LoadWatch

    device = _pick_device(config["device"])
    world = current("nccl" if device.type == "cuda" else "gloo")
    world.barrier()  # every rank has checked --out before rank 0 writes to it
    watch = LoadWatch.for_training(device.type == "cpu", world.size)
    try:
        return _train_steps(out, config, source, ckpts, progress, device, world, watch)
    finally:
        if watch is not None:
            watch.close()  # the starting thread count again, for a process that goes on (tests)


def _train_steps(out: Path, config: dict, source, ckpts, progress: bool, device, world, watch):
    """The training loop of _train_from, on `device` among `world`'s ranks; `watch` (or None) sets the threads."""
    import numpy as np
    import torch

    from .augment import augment, draw_params
    from .checkpoint import save_checkpoint
    from .losses import d_loss, g_loss, gradient_penalty, r1_penalty
    from .models import build_models

    if config.get("precision") == "auto":  # resolved once, so a resumed run keeps its arithmetic
        config["precision"] = "bf16" if native_bf16(device) else "fp32"
    low = config.get("precision") == "bf16"  # runs saved before --precision existed are fp32
    if low and not native_bf16(device):
        if device.type == "cuda":
            raise GanToolsError(f"--precision bf16 needs a GPU with bf16 arithmetic; {device} has none: use fp32")
        if world.main:
            print(
                "gantools: warning: this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 is emulated and "
                "trains many times slower than fp32 (--precision fp32 or auto)",
                file=sys.stderr,
            )
    config.update(
        world_size=world.size,
        batch_per_rank=config["batch_size"] // world.size,  # and what the
        torch_version=str(torch.__version__),
        torch_threads=torch.get_num_threads(),  # last bits depend on
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "default"),  # speed only (threads.py)
        mkl_cbwr=os.environ.get("MKL_CBWR", ""),
    )  # whether MKL's sums depend on the thread count
    torch.manual_seed(config["seed"])
    G, D = build_models(config)
    G.to(device), D.to(device)
    if config["model"] == "dcgan":  # oneDNN's convolutions run faster on NHWC than converting NCHW each call
        G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    betas = (config["beta1"], config["beta2"])
    opt_g = torch.optim.Adam(G.parameters(), lr=config["lr"], betas=betas, foreach=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=config["lr"], betas=betas, foreach=True)
    start, d_stats, ckpt = 0, {"real": 0.0, "fake": 0.0}, None
    if ckpts is not None:
        ckpt, state = _load_newest_whole(ckpts, G, D, G_ema, opt_g, opt_d)
        start, d_stats = state["step"], dict(state["d_stats"])
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.json", json.dumps(config, indent=2) + "\n")
    board = _tensorboard_writer()(str(out / "tensorboard")) if config["tensorboard"] and world.main else None
    log = _Log(
        out / "log.jsonl" if world.main else None, start, state["log_partial"] if ckpt is not None else None, board
    )
    G_run, D_run = _distribute(G, D, device, world)
    health = _HealthWatch(G_ema, config, source, out / "log.jsonl") if world.main else None

    B, L, K = config["batch_size"], config["latent_dim"], config["num_classes"]
    b = config["batch_per_rank"]
    rows = slice(world.rank * b, (world.rank + 1) * b)  # this rank's rows of every global batch
    loss, seed = config["loss"], config["seed"]
    augment_p = config.get("augment", 0.0)  # runs saved before augmentation existed had none

    def in_precision():
        """The passes under bf16 autocast when asked; weights, optimiser states, the EMA, the generator's output
        head (models.Float32) and the losses stay fp32."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=low)

    def tensor(a, dtype=torch.float32):
        return None if a is None else torch.as_tensor(a, dtype=dtype, device=device)

    def seen_by_d(images, stream):
        """This rank's rows of a global batch of images, augmented as drawn from the seeded stream."""
        params = draw_params(np.random.default_rng(stream), B, tuple(images.shape[2:]), augment_p)
        return augment(images, torch.as_tensor(params[rows], device=device))

    def snapshot(step):
        return {
            "format": 1,
            "step": step,
            "config": config,
            "generator": G.state_dict(),
            "discriminator": D.state_dict(),
            "generator_ema": G_ema.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "d_stats": dict(d_stats),
            "log_partial": log.partial(),
        }

    from .progress import progress_bar

    bar = progress_bar(total=config["steps"], initial=start, enabled=progress and world.main, desc="train", unit="step")
    G.train(), D.train()
    for t in range(start, config["steps"]):
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = config["lr"] * lr_factor(config["lr_schedule"], t, config["steps"])
        for k in range(config["n_critic"]):
            sub = t * config["n_critic"] + k
            rng = np.random.default_rng([seed, sub, 1])
            x_real, y_real = source.draw(B, seed, sub, rows)
            lazy_r1 = bool(config["r1"]) and sub % config["r1_every"] == 0
            x_real = tensor(x_real)
            y = tensor(y_real, torch.int64) if K else None
            z = tensor(rng.standard_normal((B, L), dtype=np.float32)[rows])
            with torch.no_grad(), in_precision():
                fake = G(z, y)
            if augment_p:  # R1 then acts on the images D sees, the augmented ones
                x_real, fake = seen_by_d(x_real, [seed, sub, 3]), seen_by_d(fake, [seed, sub, 4])
            x_real.requires_grad_(lazy_r1)
            # one pass over real and fake together: half the calls of two passes, the same logits
            with in_precision():
                both = D_run(torch.cat([x_real, fake]), None if y is None else torch.cat([y, y]))
            real_logits, fake_logits = both.float().split(b)
            ld = d_loss(loss, real_logits, fake_logits)
            if config["gp_weight"]:
                eps = tensor(rng.random(B, dtype=np.float32)[rows])
                with in_precision():
                    ld = ld + config["gp_weight"] * gradient_penalty(D, x_real, fake, y, eps)
            if lazy_r1:
                ld = ld + r1_weight(config, t) * config["r1_every"] * r1_penalty(real_logits, x_real)
            opt_d.zero_grad(set_to_none=True)
            ld.backward()
            opt_d.step()
        rng = np.random.default_rng([seed, t, 2])
        z = tensor(rng.standard_normal((B, L), dtype=np.float32)[rows])
        y = tensor(rng.integers(0, K, size=B)[rows], torch.int64) if K else None
        D.requires_grad_(False)  # G's step needs gradients through D, not D's own
        with in_precision():
            fake = G_run(z, y)
            fake_logits_g = D(seen_by_d(fake, [seed, t, 5]) if augment_p else fake, y)
        lg = g_loss(loss, fake_logits_g.float())
        opt_g.zero_grad(set_to_none=True)
        lg.backward()
        opt_g.step()
        D.requires_grad_(True)
        _ema_update(G_ema, G, config["ema"], t)

        ld_mean, lg_mean, r, f = _mean_over_ranks([ld, lg, real_logits.mean(), fake_logits.mean()], world)
        d_stats = {"real": 0.99 * d_stats["real"] + 0.01 * r, "fake": 0.99 * d_stats["fake"] + 0.01 * f}
        log.add(d_loss=ld_mean, g_loss=lg_mean, d_real=r, d_fake=f)
        if watch is not None and (threads := watch.poll()) is not None:
            log.note(torch_threads=threads)  # a BatchNorm generator's last bits depend on it (threads.py)
        step = t + 1
        bar.update(1)
        if step % config["log_every"] == 0 or step == config["steps"]:
            if health is not None:
                log.note(**health.look())
            row = log.flush(step, annotate=None if health is None else health.judge)
            if not (math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"])):
                raise GanToolsError(
                    f"training diverged by step {step}: the losses are NaN or Inf; start a new run "
                    "with a lower --lr (or --r1, --spectral-norm)"
                )
            flags = {"health": ",".join(row["health"])} if row.get("health") else {}
            bar.set_postfix(d=f"{row['d_loss']:.3f}", g=f"{row['g_loss']:.3f}", **flags, refresh=False)
        if world.main and (step % config["sample_every"] == 0 or step == config["steps"]):
            picture = write_samples(G_ema, config, source, out / "samples" / f"step_{step:07d}.png")
            if board is not None:
                board.add_image("samples", np.asarray(picture), step, dataformats="HWC")
        if world.main and (step % config["checkpoint_every"] == 0 or step == config["steps"]):
            save_checkpoint(out, step, snapshot(step), keep=config["keep"])
    bar.close()
    if board is not None:
        board.close()
    if not world.main:
        return None
    if start >= config["steps"] and ckpt is not None:
        return ckpt
    _write_pictures(out)
    from .checkpoint import latest_checkpoint

    return latest_checkpoint(out)


def _mean_over_ranks(values, world) -> list[float]:
    """The scalars averaged over ranks (each rank's loss is its slice's mean: the average is the global mean)."""
    import torch

    t = torch.stack([v.detach().float() for v in values])
    if world.size > 1:
        import torch.distributed as dist

        dist.all_reduce(t)
        t /= world.size
    return t.tolist()


def _ema_update(ema, model, decay: float, t: int) -> None:
    """ema <- d*ema + (1-d)*model with warm-up d = min(decay, (1+t)/(10+t)); buffers copied."""
    import torch

    d = min(decay, (1 + t) / (10 + t)) if decay > 0 else 0.0
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
            pe.lerp_(p, 1.0 - d)
        for be, b in zip(ema.buffers(), model.buffers(), strict=True):
            be.copy_(b)


def _tensorboard_writer():
    """torch's SummaryWriter class; the tensorboard package is an optional extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GanToolsError(
            "--tensorboard needs the tensorboard package: pip install 'gantools[tensorboard]'"
        ) from None
    return SummaryWriter


def write_samples(G, config: dict, source, path: Path):
    """A contact sheet (images; one row per class when conditional) or scatter plot over the modes (points);
    written to `path` and returned (a PIL image)."""
    import torch

    from .data import true_modes
    from .latents import labels_for, latents_for
    from .plots import samples_picture, save_png

    k = config["num_classes"]
    n = (8 * k if k else 64) if config["kind"] == "image" else 1000
    device = next(G.parameters()).device
    z = torch.as_tensor(latents_for(config["seed"], 0, n, config["latent_dim"]), device=device)
    y = labels_for(0, n, k)
    was_training = G.training
    G.eval()
    with torch.no_grad():
        x = G(z, None if y is None else torch.as_tensor(y, device=device)).cpu().numpy()
    G.train(was_training)
    picture = samples_picture(x, y, k, true_modes(source))
    save_png(picture, path)
    return picture


class _HealthWatch:
    """The health module's look at the generator (its exported, moving-average copy) on fixed latents at each
    log line, and the verdict over all lines so far (those before a resume included)."""

    def __init__(self, G_ema, config: dict, source, log_path: Path):
        from .data import true_modes
        from .health import FIXED_IMAGES, FIXED_POINTS, mean_pairwise_distance
        from .latents import labels_for, latents_for

        self.G, self.loss, self.steps = G_ema, config["loss"], config["steps"]
        n = FIXED_IMAGES if config["kind"] == "image" else FIXED_POINTS
        self.z = latents_for(config["seed"], 0, n, config["latent_dim"])
        self.y = labels_for(0, n, config["num_classes"])
        real, _ = source.draw(n, config["seed"], 0)  # a real batch, in the generator's output space
        self.real_spread = mean_pairwise_distance(real)
        self.modes = true_modes(source)
        self.rows = []
        if log_path.exists():  # a resumed run: the lines kept from before
            self.rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]

    def look(self) -> dict:
        """diversity (fixed-latent samples' mean pairwise distance over the real batch's) and, for data with
        known modes, mode_share and on_modes (health.mode_look)."""
        import torch

        from .health import mean_pairwise_distance, mode_look

        device = next(self.G.parameters()).device
        with torch.no_grad():
            y = None if self.y is None else torch.as_tensor(self.y, device=device)
            x = self.G(torch.as_tensor(self.z, device=device), y).float().cpu().numpy()
        out = {"diversity": round(mean_pairwise_distance(x) / max(self.real_spread, 1e-12), 4)}
        if self.modes is not None:
            out.update({k: round(v, 4) for k, v in mode_look(x, *self.modes).items()})
        return out

    def judge(self, row: dict) -> dict:
        from .health import diagnose

        self.rows.append(row)
        return {"health": [v.problem for v in diagnose(self.rows, self.loss, self.steps)]}


class _Log:
    """log.jsonl: means of each quantity over the steps since the last line.

    On resume, lines past the checkpoint's step are dropped, so the log of a
    resumed run reads as if it had never stopped.
    """

    def __init__(self, path: Path | None, start: int, partial: dict | None = None, board=None):
        """`path` None keeps the sums but writes nothing (ranks other than 0); `board`, a TensorBoard
        SummaryWriter, also gets each line's values and the steps per second."""
        self.path, self.t0, self.board, self.last = path, time.perf_counter(), board, (start, 0.0)
        self.sums: dict[str, float] = dict(partial["sums"]) if partial else {}
        self.count: int = partial["count"] if partial else 0
        self.notes: dict[str, Any] = {}
        if path is not None and path.exists():
            kept = [ln for ln in path.read_text().splitlines() if _step_of(ln) <= start]
            write_text_atomic(path, "".join(ln + "\n" for ln in kept))

    def add(self, **values) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def note(self, **values) -> None:
        """Values for the next line as they are (not averaged): events such as a change of thread count."""
        self.notes.update(values)

    def partial(self) -> dict:
        """The sums since the last line, saved in checkpoints so a resumed log matches."""
        return {"sums": dict(self.sums), "count": self.count}

    def flush(self, step: int, annotate=None) -> dict:
        """Write the line of `step`; `annotate(row)` may add values computed from it (the health verdict)."""
        row = {
            "step": step,
            **{k: v / self.count for k, v in self.sums.items()},
            "seconds": round(time.perf_counter() - self.t0, 3),
            **self.notes,
        }
        if annotate is not None:
            row.update(annotate(row))
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
        if self.board is not None:
            for key, value in row.items():
                if key not in ("step", "seconds", "health", *self.notes):
                    self.board.add_scalar(f"train/{key}", value, step)
            (last_step, last_s), self.last = self.last, (step, row["seconds"])
            if row["seconds"] > last_s:
                self.board.add_scalar("train/steps_per_s", (step - last_step) / (row["seconds"] - last_s), step)
        self.sums, self.count, self.notes = {}, 0, {}
        return row


def _step_of(line: str) -> float:
    """The step of a log line; infinity for a line a killed run left half-written."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


def _write_pictures(out: Path) -> None:
    """loss.png (losses and D outputs) and report.html, the run's page (see report.py)."""
    from .checkpoint import read_log
    from .plots import save_png, training_curves
    from .report import run_report

    rows = read_log(out)
    curves = training_curves(rows) if rows else None
    if curves is not None:
        save_png(curves, out / "loss.png")
    run_report(out, out / "report.html", curves=curves)
