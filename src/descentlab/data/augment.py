"""Data augmentation on whole batches, with a different random draw for every sample.

torchvision.transforms.v2 transforms draw one set of random parameters per call, so a
batched tensor would get the *same* rotation for all its images. Drawing per sample
through v2 means a Python loop over samples; here the per-sample affine warp is one
``grid_sample`` call for the batch, computed exactly as ``v2.functional.affine`` does
for one image (the tests check them against each other). Noise is torchvision's own
``v2.GaussianNoise`` (independent per element already).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.transforms import v2


def inverse_affine_matrices(angle: Tensor, translate: Tensor, scale: Tensor) -> Tensor:
    """(N, 2, 3) output→input pixel maps, centred on the image, as torchvision builds them.

    For a rotation by ``angle`` degrees, a shift of ``translate`` pixels and a zoom
    ``scale``: M⁻¹ = R(θ)⁻¹ / s ∘ T(−t), with rows [cos θ, sin θ] and [−sin θ, cos θ].
    """
    theta = torch.deg2rad(angle)
    cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale
    tx, ty = translate[:, 0], translate[:, 1]
    row0 = torch.stack([cos, sin, -(cos * tx + sin * ty)], dim=1)
    row1 = torch.stack([-sin, cos, -(-sin * tx + cos * ty)], dim=1)
    return torch.stack([row0, row1], dim=1)


def batch_affine(
    x: Tensor, angle: Tensor, translate: Tensor, scale: Tensor, fill: float = 0.0
) -> Tensor:
    """Warp each image of ``x`` (N, C, H, W) by its own angle/translate/scale (bilinear).

    Pixels that come from outside the image take the value ``fill``.
    """
    n, _, h, w = x.shape
    matrices = inverse_affine_matrices(angle, translate, scale).to(x.dtype)
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=x.device, dtype=x.dtype)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, device=x.device, dtype=x.dtype)
    base = torch.stack(
        torch.meshgrid(xs, ys, indexing="xy") + (torch.ones(h, w, device=x.device, dtype=x.dtype),),
        -1,
    )
    scale_to_unit = torch.tensor([0.5 * w, 0.5 * h], device=x.device, dtype=x.dtype)
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(matrices.transpose(1, 2) / scale_to_unit)
    warped = F.grid_sample(
        x - fill, grid.view(n, h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return warped + fill


class RandomAffineBatch(nn.Module):
    """Per-sample random rotation (±``degrees``), shift (±``translate`` of the size) and zoom."""

    def __init__(
        self,
        degrees: float = 10.0,
        translate: float = 0.1,
        scale: Sequence[float] = (0.9, 1.1),
        fill: float | None = None,
    ):
        super().__init__()
        self.degrees, self.translate, self.scale, self.fill = degrees, translate, tuple(scale), fill

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        u = torch.rand(n, 4, device=x.device)
        angle = (2 * u[:, 0] - 1) * self.degrees
        shift = torch.stack(
            [(2 * u[:, 1] - 1) * self.translate * w, (2 * u[:, 2] - 1) * self.translate * h], 1
        )
        shift = shift.round()  # torchvision's RandomAffine rounds shifts to whole pixels
        scale = self.scale[0] + u[:, 3] * (self.scale[1] - self.scale[0])
        fill = float(x.amin()) if self.fill is None else self.fill  # the background value
        return batch_affine(x, angle, shift, scale, fill)


class RandomCropBatch(nn.Module):
    """RandomCrop(size, padding=p) for every sample: a whole-pixel shift by up to ±p, zero fill."""

    def __init__(self, padding: int = 4, fill: float = 0.0):
        super().__init__()
        self.padding, self.fill = padding, fill

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        shift = torch.randint(-self.padding, self.padding + 1, (n, 2), device=x.device).to(x.dtype)
        zeros = torch.zeros(n, device=x.device, dtype=x.dtype)
        return batch_affine(x, zeros, shift, zeros + 1, self.fill)


class RandomHorizontalFlipBatch(nn.Module):
    """Flip each sample left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.p
        return torch.where(flip, x.flip(-1), x)


def augmentation(
    dims: Sequence[int],
    noise: float = 0.05,
    degrees: float = 10.0,
    translate: float = 0.1,
    crop_padding: int = 4,
) -> nn.Module:
    """Augmentations suited to the data: affine + noise for grayscale digits, crop + flip for colour.

    Digits are not flipped (a flipped 2 is no 2); small photos (CIFAR-10) are.
    """
    channels = dims[0]
    if channels == 1:
        return nn.Sequential(
            RandomAffineBatch(degrees=degrees, translate=translate),
            v2.GaussianNoise(mean=0.0, sigma=noise, clip=False),
        )
    return nn.Sequential(RandomCropBatch(padding=crop_padding), RandomHorizontalFlipBatch(0.5))
