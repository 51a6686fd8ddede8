"""Training recipes: the settings each built-in data set trains best with.

An option the user types always wins; then the recipe for (data set, model),
when there is one; then the classic settings (the GAN of Goodfellow et al.
with DCGAN's Adam 2e-4, beta1 0.5). The recipes are the winners of
`bench/quality.py`, which trains and scores each of them over several seeds
(bench/README.md has the figures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CLASSIC: dict[str, Any] = dict(
    loss="ns",
    steps=2000,
    batch_size=64,
    lr=2e-4,
    beta1=0.5,
    beta2=0.999,
    lr_schedule="constant",
    ema=0.999,
    latent_dim=64,
    spectral_norm=False,
    r1=0.0,
    r1_every=16,
    mixture=0,
    g_norm="batch",
    augment=0.0,
    precision="fp32",
)

_POINTS = dict(
    steps=12000,
    batch_size=256,
    lr=1e-3,
    lr_schedule="linear",
    r1=1.0,
    r1_final=0.01,
    mixture=100,
    latent_dim=4,
    ema=0.0,
    r1_every=4,  # at 16 the ring's samples strayed from its modes in some seeds (bench/quality.py)
)

RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    ("ring", "mlp"): dict(_POINTS, steps=8000),  # 8 modes settle sooner; longer runs drifted off a mode late
    ("grid", "mlp"): dict(_POINTS, r1_final=0.1),  # at 0.01 a mode's samples could end outside 3 sigma of its centre
    ("digits", "dcgan"): dict(
        steps=10000,
        batch_size=64,
        lr=1e-3,
        beta1=0.0,
        beta2=0.99,
        lr_schedule="linear",
        r1=1.0,
        mixture=50,
        ema=0.999,
        width=32,
        g_norm="none",  # width 32 for 10,000 steps: as good as width 48 for 8,000, in less time (bench/quality.py)
    ),
    # the classic MLP GAN exactly, as the baseline the MNIST recipes are measured against: 100-d latent, 3 x 128
    # leaky ReLU 0.2, the ns loss, Adam 2e-4 (beta 0.5, 0.999), batches of 128, no moving average. On 3,750 digits
    # its discriminator wins outright within a few thousand steps; it is stopped where its samples were best
    ("mnist", "mlp"): dict(steps=2000, batch_size=128, latent_dim=100, width=128, ema=0.0),
    # the digits recipe's optimiser at MNIST's 28 x 28, R1 a little stronger, cut to what trains in 15 minutes on
    # 2 cores; without the latent mixture the domain FID doubled. In bf16 where it is native (auto), which on
    # CPUs with AVX512-BF16 trains 7,000 steps in the time fp32 trains 5,000 (bench/train_speed.py) and scored
    # better (bench/quality.py); elsewhere in fp32, as emulated bf16 is many times slower
    ("mnist", "dcgan"): dict(
        steps=7000,
        precision="auto",
        batch_size=64,
        lr=1e-3,
        beta1=0.0,
        beta2=0.99,
        lr_schedule="linear",
        r1=2.0,
        mixture=50,
        ema=0.999,
        width=32,
        g_norm="none",
        levels=256,
    ),
}

# what changes when the model is --conditional (a recipe of its own, "digits/dcgan+conditional")
CONDITIONAL: dict[tuple[str, str], dict[str, Any]] = {
    # R1 decaying to 0.1: at a constant 1 the class-projection D went flat (loss ln 4, no signal to G) midway,
    # and the pixel C2ST was worse over 8 seeds. The unconditional D stays alive at 1 and did worse with the
    # decay (bench/quality.py)
    ("digits", "dcgan"): dict(steps=8000, r1_final=0.1),
}

DEFAULT_MODEL = {"digits": "dcgan", "mnist": "dcgan"}


def recipe_family(data: str) -> str | None:
    """The built-in data set whose recipes suit `--data DATA`: its name, or "mnist" for MNIST IDX files
    (the full 60,000 digits, for those who have them on disk); None for anything else."""
    from .data import split_spec

    base, _ = split_spec(data)
    path = Path(base).expanduser()
    if not path.exists():
        return base
    name = path.name.lower()
    return "mnist" if "images-idx3-ubyte" in name else None


def recipe_name(data: str, model: str | None, conditional: bool = False) -> tuple[str, str]:
    """(recipe name such as 'grid/mlp', 'digits/dcgan+conditional' or 'classic', model) for `--data DATA`."""
    builtin = recipe_family(data)
    model = model or DEFAULT_MODEL.get(builtin or "", "mlp")
    if (builtin, model) not in RECIPES:
        return "classic", model
    return f"{builtin}/{model}" + ("+conditional" if conditional and (builtin, model) in CONDITIONAL else ""), model


def recipe_settings(data: str, model: str | None, conditional: bool = False) -> dict:
    """Every recipe-dependent setting for this data set and model (user options not applied)."""
    name, model = recipe_name(data, model, conditional)
    settings = dict(CLASSIC, model=model, recipe=name)
    if name != "classic":
        family, recipe_model = name.split("+")[0].split("/")
        key = (family, recipe_model)
        settings.update(RECIPES[key])
        if name.endswith("+conditional"):
            settings.update(CONDITIONAL[key])
    return settings
