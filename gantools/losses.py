"""GAN losses as pure functions of discriminator logits (plus the WGAN-GP penalty).

Each loss gives (discriminator loss, generator loss) in terms of the logits on
real samples and on generated ones; the decision threshold on a logit is 0
for `ns` and `hinge` (real > 0), while a WGAN critic has none of its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ns", "hinge", "wgan-gp")


def d_loss(loss: str, real_logits, fake_logits):
    if loss == "ns":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if loss == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if loss == "wgan-gp":
        return fake_logits.mean() - real_logits.mean()
    raise ValueError(f"unknown loss {loss!r}")


def g_loss(loss: str, fake_logits):
    if loss == "ns":  # -log D(G(z)), the non-saturating loss of Goodfellow et al.
        return F.softplus(-fake_logits).mean()
    if loss in ("hinge", "wgan-gp"):
        return -fake_logits.mean()
    raise ValueError(f"unknown loss {loss!r}")


def gradient_penalty(discriminator, real, fake, y, eps):
    """(||grad_x D(x_hat)|| - 1)^2 at x_hat = eps*real + (1-eps)*fake (Gulrajani et al. 2017).

    `eps` has shape [B] and comes from the caller so that training stays a
    pure function of its seed.
    """
    shape = (-1,) + (1,) * (real.dim() - 1)
    x_hat = (eps.view(shape) * real + (1 - eps.view(shape)) * fake).requires_grad_(True)
    out = discriminator(x_hat, y)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def r1_penalty(real_logits, real):
    """(1/2) E ||grad_x D(x)||^2 on real samples (Mescheder et al. 2018); the caller scales it by gamma.

    `real` must have had requires_grad set before D ran on it. Penalising the
    discriminator's slope where the data is keeps it from overshooting around
    real samples, so training converges instead of circling, while its smooth
    landscape still points towards modes the generator has not found yet.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return 0.5 * grad.flatten(1).pow(2).sum(dim=1).mean()
