"""The options of `gantools train`, apart from the training loop, so the command line can show their
defaults without importing the loop (and what it imports) on every start."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Training options; None means "the recipe's value" (see recipes.py), resolved in resolve_config."""

    data: str = "digits"
    image_size: int | None = None
    model: str | None = None  # default: dcgan for digits and mnist, else mlp
    conditional: bool = False
    skip_bad_images: bool = False
    loss: str | None = None
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    lr_schedule: str | None = None
    n_critic: int | None = None  # default: 5 for wgan-gp, else 1
    gp_weight: float | None = None  # default: 10 for wgan-gp, else 0
    r1: float | None = None
    r1_final: float | None = None  # default: r1 (constant); else decays geometrically from r1 to it
    r1_every: int | None = None  # lazy R1 (StyleGAN2): the penalty, scaled by this, on every r1_every-th D step
    ema: float | None = None  # 0 disables the moving average
    latent_dim: int | None = None
    width: int | None = None  # default: 128 hidden units (mlp), 64 base channels (dcgan)
    mixture: int | None = None
    g_norm: str | None = None  # dcgan generator: batch (BatchNorm) or none
    levels: int | None = None  # default: the data's grey levels when there are few, else 0 (continuous)
    spectral_norm: bool | None = None
    augment: float | None = None  # probability of each of D's augmentations (translation, cutout); 0 = none
    precision: str | None = None  # the passes' arithmetic: fp32, bf16 (autocast), or auto (bf16 where native)
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    sample_every: int = 500
    log_every: int = 50
    keep: int = 3
    tensorboard: bool = False  # also write TensorBoard scalars and sample images to RUN/tensorboard
