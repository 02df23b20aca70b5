"""The U-Net of App. B.1 / Table 1.

DDPM-style (Ho et al. 2020): residual blocks with GroupNorm and dropout, a sinusoidal level
embedding added in every block, single-head self-attention at the listed resolutions,
average-pool downsampling and nearest-neighbour upsampling (the paper's choice; DDPM used
strided and transposed convolutions). The output convolution is zero-initialised so an
untrained network is f = 0, i.e. mu(u_k, k) = u_k, which is already a sensible reverse step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["UNet", "level_embedding", "Autocast"]


def level_embedding(k: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer-style sinusoidal embedding of integer levels k (shape (B,)) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=k.device,
                                                           dtype=torch.float32) / max(half - 1, 1))
    args = k.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _groups(ch: int) -> int:
    # 32 groups as in DDPM, fewer for the narrow CPU presets so every group has >= 4 channels.
    g = min(32, max(1, ch // 4))
    while ch % g:
        g -= 1
    return g


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions (as in DDPM; no multi-head)."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        # SDPA picks the flash / memory-efficient kernel on GPU; same math as
        # softmax(qk^T/sqrt(c))v.
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """f_theta(u, k): returns the update that is added to u (mu = u + f)."""

    def __init__(self, image_size: int = 32, in_channels: int = 3, base_channels: int = 128,
                 channel_mult=(1, 2, 2, 2), num_res_blocks: int = 2, attn_resolutions=(16,),
                 dropout: float = 0.1, num_levels: int | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.image_size = image_size
        self.num_levels = num_levels
        nf = base_channels
        temb_dim = 4 * nf
        self.nf = nf
        self.temb = nn.Sequential(nn.Linear(nf, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim))
        self.conv_in = nn.Conv2d(in_channels, nf, 3, padding=1)

        attn_resolutions = set(int(r) for r in attn_resolutions)
        self.down = nn.ModuleList()
        chans = [nf]
        ch, res = nf, image_size
        for i, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                block = nn.ModuleList([ResBlock(ch, nf * mult, temb_dim, dropout)])
                ch = nf * mult
                if res in attn_resolutions:
                    block.append(AttnBlock(ch))
                self.down.append(block)
                chans.append(ch)
            if i != len(channel_mult) - 1:
                if res % 2:
                    raise ValueError(f"feature map of size {res} cannot be halved; adjust "
                                     f"channel_mult")
                self.down.append(nn.ModuleList([nn.AvgPool2d(2)]))
                res //= 2
                chans.append(ch)

        self.mid = nn.ModuleList([ResBlock(ch, ch, temb_dim, dropout), AttnBlock(ch),
                                  ResBlock(ch, ch, temb_dim, dropout)])

        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_res_blocks + 1):
                block = nn.ModuleList([ResBlock(ch + chans.pop(), nf * mult, temb_dim, dropout)])
                ch = nf * mult
                if res in attn_resolutions:
                    block.append(AttnBlock(ch))
                self.up.append(block)
            if i != 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest")]))
                res *= 2
        assert not chans

        self.norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_out = _zero(nn.Conv2d(ch, in_channels, 3, padding=1))

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if k.dim() == 0:
            k = k.expand(x.shape[0])
        temb = self.temb(level_embedding(k, self.nf))
        # Centre the [0, 1] data as DDPM does; the heat process itself works on [0, 1].
        h = self.conv_in(2 * x - 1)
        hs = [h]
        for block in self.down:
            layer = block[0]
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
            for extra in block[1:]:
                h = extra(h)
            hs.append(h)
        h = self.mid[0](h, temb)
        h = self.mid[1](h)
        h = self.mid[2](h, temb)
        for block in self.up:
            layer = block[0]
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), temb)
            else:
                h = layer(h)
            for extra in block[1:]:
                h = extra(h)
        assert not hs
        return self.conv_out(F.silu(self.norm_out(h)))


class Autocast(nn.Module):
    """Runs only the wrapped network under autocast and returns float32.

    The heat operator, noise and skip connection around it stay in float32: at small k,
    u_k and u_{k-1} differ by far less than bf16's resolution near 1, so computing the blur
    or the training target in reduced precision would destroy the signal being learned.
    """

    def __init__(self, net: nn.Module, dtype: torch.dtype | None):
        super().__init__()
        self.net, self.dtype = net, dtype

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        if self.dtype is None:
            return self.net(x, k)
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.net(x, k).float()
