"""The token mixers of issue 20's table written as a PyTorch user writes them: nn.Modules of
vectorised tensor operations, no custom kernels, autograd for the backward. Each maps x (B, L, D)
with a key-padding mask (B, L) bool (True: a real position) to (B, L, D), with the Q/K/V and
output projections of xformer-bench's mixers (no biases, the default `bias: false`) and their
default options (local's block is 64 here, as in the issue's table); scripts/peers.sh passes the
same options to ours (ours_sets there)."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Q/K/V and output projections around a mixing function on (B, H, L, Dh) heads."""

    def __init__(self, d_model, heads):
        super().__init__()
        self.h, self.dh = heads, d_model // heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x, mask):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        y = self.mix(q, k, v, mask)  # (B, H, L, Dh)
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class Full(Attention):
    """softmax(QK^T / sqrt(d)) V, the L x L scores materialised (1706.03762)."""

    def mix(self, q, k, v, mask):
        s = q @ k.transpose(-1, -2) / math.sqrt(self.dh)
        s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
        return s.softmax(-1) @ v


class Local(Attention):
    """Attention within contiguous blocks of `block` positions (1802.05751)."""

    def __init__(self, d_model, heads, block=64):
        super().__init__(d_model, heads)
        self.block = block

    def mix(self, q, k, v, mask):
        B, H, L, Dh = q.shape
        n, b = L // self.block, self.block
        assert n * b == L, "the length must be a multiple of the block"
        q, k, v = (t.reshape(B, H, n, b, Dh) for t in (q, k, v))
        s = q @ k.transpose(-1, -2) / math.sqrt(Dh)
        s = s.masked_fill(~mask.view(B, 1, n, 1, b), float("-inf"))
        # a block of padding only: every score -inf; its rows are padding, set them to 0
        y = s.softmax(-1).nan_to_num(0.0) @ v
        return y.reshape(B, H, L, Dh)


class Linformer(Attention):
    """Keys and values projected along the length to k by E, F, shared by the heads of a layer
    (2006.04768, `headwise`)."""

    def __init__(self, d_model, heads, length, k=256):
        super().__init__(d_model, heads)
        self.E = nn.Parameter(torch.randn(k, length) / math.sqrt(k))
        self.F = nn.Parameter(torch.randn(k, length) / math.sqrt(k))

    def mix(self, q, k, v, mask):
        m = mask[:, None, :, None].to(k.dtype)  # padded keys and values contribute nothing
        kp, vp = self.E @ (k * m), self.F @ (v * m)  # (B, H, k, Dh)
        s = q @ kp.transpose(-1, -2) / math.sqrt(self.dh)
        return s.softmax(-1) @ vp


class Linear(Attention):
    """phi(Q) (phi(K)^T V) / (phi(Q) sum phi(K)), phi = elu + 1 (2006.16236)."""

    def mix(self, q, k, v, mask):
        q, k = F.elu(q) + 1, (F.elu(k) + 1) * mask[:, None, :, None]
        kv = k.transpose(-1, -2) @ v  # (B, H, Dh, Dh)
        z = 1.0 / (q @ k.sum(2, keepdim=True).transpose(-1, -2) + 1e-6)  # (B, H, L, 1)
        return (q @ kv) * z


def orthogonal_gaussian(m, d):
    """m x d random features: blocks of d orthogonal rows, each scaled to the norm of a
    Gaussian vector (FAVOR+, 2009.14794 section 2.4)."""
    blocks = [torch.linalg.qr(torch.randn(d, d))[0].T for _ in range(math.ceil(m / d))]
    w = torch.cat(blocks)[:m]
    return w * torch.randn(m, d).norm(dim=1, keepdim=True)


class Performer(Attention):
    """FAVOR+: positive orthogonal random features of the softmax kernel, redrawn every step as
    the authors' code and xformer-bench's default `redraw: 1` do (2009.14794)."""

    def __init__(self, d_model, heads, features=256):
        super().__init__(d_model, heads)
        self.m = features

    def phi(self, x, w, is_query):
        x = x * self.dh ** -0.25
        proj = x @ w.T  # (B, H, L, m)
        diag = (x * x).sum(-1, keepdim=True) / 2
        stab = proj.amax(-1, keepdim=True) if is_query else proj.amax((-1, -2), keepdim=True)
        return (torch.exp(proj - diag - stab.detach()) + 1e-4) / math.sqrt(self.m)

    def mix(self, q, k, v, mask):
        w = orthogonal_gaussian(self.m, self.dh)
        q, k = self.phi(q, w, True), self.phi(k, w, False) * mask[:, None, :, None]
        kv = k.transpose(-1, -2) @ v  # (B, H, m, Dh)
        z = 1.0 / (q @ k.sum(2, keepdim=True).transpose(-1, -2) + 1e-6)
        return (q @ kv) * z


class Nystrom(Attention):
    """Segment-mean landmarks, softmax kernels, the iterative Moore-Penrose pseudo-inverse and a
    depthwise convolution skip on V, as the authors' NystromAttention (2102.03902)."""

    def __init__(self, d_model, heads, landmarks=64, pinv_iters=6, conv=33):
        super().__init__(d_model, heads)
        self.m, self.iters = landmarks, pinv_iters
        self.conv = nn.Conv2d(heads, heads, (conv, 1), padding=(conv // 2, 0), groups=heads,
                              bias=False)

    def pinv(self, x):
        a = x.abs()
        z = x.transpose(-1, -2) / (a.sum(-1).amax() * a.sum(-2).amax())
        eye = torch.eye(x.shape[-1], dtype=x.dtype)
        for _ in range(self.iters):
            xz = x @ z
            z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
        return z

    def mix(self, q, k, v, mask):
        B, H, L, Dh = q.shape
        m = mask[:, None, :, None].to(q.dtype)
        q, k, v = q * m / math.sqrt(math.sqrt(Dh)), k * m / math.sqrt(math.sqrt(Dh)), v * m
        ql = q.reshape(B, H, self.m, L // self.m, Dh).mean(-2)
        kl = k.reshape(B, H, self.m, L // self.m, Dh).mean(-2)
        k1 = (q @ kl.transpose(-1, -2)).softmax(-1)
        k2 = (ql @ kl.transpose(-1, -2)).softmax(-1)
        s3 = (ql @ k.transpose(-1, -2)).masked_fill(~mask[:, None, None, :], float("-inf"))
        y = k1 @ (self.pinv(k2) @ (s3.softmax(-1) @ v))
        return y + self.conv(v)


MECHANISMS = {
    "full": lambda d, h, L: Full(d, h),
    "local": lambda d, h, L: Local(d, h, block=64),
    "linformer": lambda d, h, L: Linformer(d, h, L, k=256),
    "linear": lambda d, h, L: Linear(d, h),
    "performer": lambda d, h, L: Performer(d, h, features=256),
    "nystrom": lambda d, h, L: Nystrom(d, h, landmarks=64),
}
