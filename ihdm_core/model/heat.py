"""The heat operator F(t), the blur schedule of App. B.5, and the IHDM forward process.

Everything here is float32: the original release promoted the blur to float64 through a
NumPy schedule, which is slow on GPUs and buys nothing at 8-bit data precision.

The heat operator is applied without going through frequency space at all: the Neumann
Laplacian's eigenbasis and eigenvalues are separable, so F(t) = V exp(-Lambda t) V^T factorises
exactly into one symmetric H x H matrix acting on columns and one W x W matrix acting on rows,

    F(t) u = A_H(t) u A_W(t),   A_N(t) = C_N^T diag(exp(-(pi n / N)^2 t)) C_N,

which is two matrix products instead of the four of DCT -> decay -> inverse DCT. The
matrices are built in float64 and cached per level. For the paper's image sizes (28 to 256
pixels) this beats FFT-based DCTs on CPU and GPU, is exact to float32 round-off, and
handles any H x W, not only squares.

The 2-D DCT (:func:`dct2`, products with precomputed orthonormal DCT-II matrices) is kept for
what needs frequency space: the power spectra, the Gaussian diffusions' per-frequency
arithmetic, and :meth:`HeatDissipation.trajectory`, which applies all K + 1 decays to one DCT.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from ._util import randn_like
from .process import Step

__all__ = [
    "dct_matrix",
    "heat_matrix",
    "dct2",
    "idct2",
    "laplacian_eigenvalues",
    "heat_forward",
    "blur_sigmas",
    "heat_times",
    "HeatDissipation",
]


@lru_cache(maxsize=64)
def _dct_matrix_cached(n: int, device: str, dtype: torch.dtype) -> Tensor:
    i = torch.arange(n, dtype=torch.float64)
    k = i[:, None]
    c = torch.cos(math.pi * (i[None, :] + 0.5) * k / n)
    scale = torch.full((n, 1), math.sqrt(2.0 / n), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / n)
    # Built in float64 and rounded once, so the matrix is orthonormal to float32 precision.
    return (c * scale).to(device=device, dtype=dtype)


def dct_matrix(n: int, device=None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Orthonormal DCT-II matrix C (n x n): ``dct(x) = C @ x``, ``idct(X) = C.T @ X``.

    Row k is the k-th cosine basis vector, i.e. C[k, i] = s_k cos(pi (i + 1/2) k / n),
    the same transform as ``scipy.fft.dct(x, type=2, norm="ortho")``.
    """
    if n < 1:
        raise ValueError(f"DCT size must be positive, got {n}")
    return _dct_matrix_cached(int(n), str(torch.device(device or "cpu")), dtype)


def _check_image(x: Tensor, name: str = "u") -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have at least 2 dims (..., H, W), "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _transform(x: Tensor, inverse: bool) -> Tensor:
    h, w = x.shape[-2], x.shape[-1]
    ch = dct_matrix(h, x.device, x.dtype)
    cw = dct_matrix(w, x.device, x.dtype)
    if inverse:
        ch, cw = ch.T, cw.T
    # x @ cw.T transforms the rows; one more product on the transposed view does the columns.
    # Both are single GEMMs over all leading dims, which is what makes this fast on CPU.
    y = torch.matmul(x, cw.T)
    return torch.matmul(ch, y)


def dct2(x: Tensor) -> Tensor:
    """Orthonormal 2-D DCT-II over the last two dims (any H, W)."""
    _check_image(x, "x")
    return _transform(x, inverse=False)


def idct2(x: Tensor) -> Tensor:
    """Inverse of :func:`dct2` (orthonormal DCT-III) over the last two dims."""
    _check_image(x, "x")
    return _transform(x, inverse=True)


@lru_cache(maxsize=64)
def _eigs_cached(h: int, w: int, device: str, dtype: torch.dtype) -> Tensor:
    fh = (math.pi * torch.arange(h, dtype=torch.float64) / h) ** 2
    fw = (math.pi * torch.arange(w, dtype=torch.float64) / w) ** 2
    return (fh[:, None] + fw[None, :]).to(device=device, dtype=dtype)


def laplacian_eigenvalues(h: int, w: int, device=None,
                          dtype: torch.dtype = torch.float32) -> Tensor:
    """lambda_{n,m} = pi^2 (n^2/H^2 + m^2/W^2), in pixel units (App. A.1, Eq. 21).

    These are the eigenvalues of -Delta; the paper's Lambda holds their negatives.
    """
    return _eigs_cached(int(h), int(w), str(torch.device(device or "cpu")), dtype)


def _as_time(t, x: Tensor) -> Tensor:
    """Broadcastable time tensor: a scalar, or one value per leading (batch) element."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if torch.any(t < 0):
        raise ValueError("heat time t must be non-negative "
                         "(the inverse heat equation is ill-posed)")
    if t.dim() == 0:
        return t
    if t.dim() != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t.reshape(-1, *([1] * (x.dim() - 1)))


def heat_matrix(n: int, t, device=None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The 1-D Neumann heat operator A_n(t) = C^T diag(exp(-(pi k / n)^2 t)) C,
    shape (*t.shape, n, n).

    Symmetric; F(t) on an H x W image is ``A_H(t) @ u @ A_W(t)``.
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    c = dct_matrix(n, "cpu", torch.float64)
    lam = (math.pi * torch.arange(n, dtype=torch.float64) / n) ** 2
    decay = torch.exp(-lam * t[..., None])  # (*t, n)
    return ((c.T * decay[..., None, :]) @ c).to(device=device or "cpu", dtype=dtype)


def _apply_separable(u: Tensor, ah: Tensor, aw: Tensor) -> Tensor:
    """A_H u A_W for symmetric A's: one shared pair (2-D) or one pair per sample (3-D)."""
    if ah.dim() == 2:
        # u @ aw is one GEMM over all leading dims; the column pass runs on the transpose.
        return torch.matmul(torch.matmul(u, aw).mT, ah).mT
    b, h, w = u.shape[0], u.shape[-2], u.shape[-1]
    lead = u.shape[1:-2]
    z = torch.bmm(u.reshape(b, -1, w), aw)  # rows, per sample
    z = z.reshape(b, *lead, h, w).mT.reshape(b, -1, h)
    z = torch.bmm(z, ah)  # columns, per sample
    return z.reshape(b, *lead, w, h).mT


def heat_forward(u: Tensor, t) -> Tensor:
    """F(t) u: the heat equation with Neumann boundaries run for time t (Eq. 2, Alg. 3).

    ``u`` is (..., H, W); ``t`` a float or a tensor with one value per sample along dim 0.
    Equivalent to a Gaussian blur with sigma_B = sqrt(2 t) and reflecting boundaries.
    """
    _check_image(u, "u")
    tt = _as_time(t, u)
    tt = tt.reshape(-1) if tt.dim() else tt
    h, w = u.shape[-2], u.shape[-1]
    ah = heat_matrix(h, tt.cpu(), u.device, u.dtype)
    aw = ah if w == h else heat_matrix(w, tt.cpu(), u.device, u.dtype)
    if u.dim() == 2:
        return ah @ u @ aw
    return _apply_separable(u, ah, aw)


def blur_sigmas(K: int, sigma_min: float = 0.5, sigma_max: float = 20.0) -> Tensor:
    """sigma_B,k for k = 0..K: sigma_B,0 = 0 and sigma_B,1..K log-spaced (App. B.5).

    sigma_B,k = exp(log sigma_min (K-k)/(K-1) + log sigma_max (k-1)/(K-1)).
    """
    if int(K) != K or K < 1:
        raise ValueError(f"K must be a positive integer, got {K}")
    if not (0 < sigma_min <= sigma_max):
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    K = int(K)
    if K == 1:
        inner = torch.tensor([float(sigma_max)], dtype=torch.float64)
    else:
        inner = torch.exp(torch.linspace(math.log(sigma_min), math.log(sigma_max), K,
                                         dtype=torch.float64))
    return torch.cat([torch.zeros(1, dtype=torch.float64), inner]).float()


def heat_times(K: int, sigma_min: float = 0.5, sigma_max: float = 20.0) -> Tensor:
    """t_k = sigma_B,k^2 / 2 for k = 0..K (t_0 = 0)."""
    return blur_sigmas(K, sigma_min, sigma_max).double().pow(2).div(2).float()


class HeatDissipation:
    """The IHDM forward process q(u_k | u_0) = N(F(t_k) u_0, sigma^2 I) and its reverse step.

    The 1-D heat operators A_H(t_k), A_W(t_k) of every level are built once, so a blur to one level
    for the whole batch is two matrix products, and one level per sample two batched products.
    The frequency-space decays exp(-lambda t_k) are cached too: :meth:`trajectory` applies all of
    them to one DCT of the image.

    It implements :class:`ihdm_core.model.process.Process`, the interface the training loop and
    the samplers use, as DDPM and Blurring Diffusion do.
    """

    name = "ihdm"
    data_prior = True  # p(u_K) is a KDE on blurred training images (Sec. 3.2)

    def __init__(self, image_size, K: int, sigma_max: float, sigma_min: float = 0.5,
                 sigma: float = 0.01, delta: float = 0.0125, device=None):
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if sigma < 0 or delta < 0:
            raise ValueError(f"sigma and delta must be >= 0, got sigma={sigma}, delta={delta}")
        self.image_size = (int(h), int(w))
        self.K = int(K)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.sigma, self.delta = float(sigma), float(delta)
        self.device = torch.device(device or "cpu")
        self.sigma_B = blur_sigmas(self.K, sigma_min, sigma_max).to(self.device)
        self.t = heat_times(self.K, sigma_min, sigma_max).to(self.device)
        lam = laplacian_eigenvalues(h, w, self.device, torch.float64)
        self.decays = torch.exp(-lam[None] * self.t.double().to(self.device)[:, None, None]).float()
        # Per-level 1-D heat operators: F(t_k) u = A_H[k] u A_W[k] (see the module docstring).
        t64 = heat_times(self.K, sigma_min, sigma_max).double()
        self.mats_h = heat_matrix(h, t64, self.device)
        self.mats_w = self.mats_h if w == h else heat_matrix(w, t64, self.device)

    def to(self, device) -> "HeatDissipation":
        return HeatDissipation(self.image_size, self.K, self.sigma_max, self.sigma_min,
                               self.sigma, self.delta, device)

    # -- forward process --------------------------------------------------------------
    def _levels(self, k, n: int) -> Tensor:
        k = torch.as_tensor(k, device=self.device, dtype=torch.long)
        return check_levels(k.expand(n) if k.dim() == 0 else k, self.K)

    def _check_size(self, u: Tensor) -> None:
        _check_image(u)
        if tuple(u.shape[-2:]) != self.image_size:
            raise ValueError(f"process was built for {self.image_size} images, got "
                             f"{tuple(u.shape[-2:])}")

    def blur(self, u0: Tensor, k) -> Tensor:
        """u_k = F(t_k) u_0 for an int level or one level per sample."""
        self._check_size(u0)
        if isinstance(k, int) or (isinstance(k, Tensor) and k.dim() == 0):
            # One shared pair of matrices: plain GEMMs. A Python int is checked on the host (a
            # tensor made of it would be a blocking copy to the GPU, and reading it back a second
            # stall).
            k = int(k)
            if not 0 <= k <= self.K:
                raise ValueError(f"levels must lie in 0..{self.K}, got {k}")
        else:
            k = self._levels(k, u0.shape[0])  # one pair per sample: batched GEMMs
        return _apply_separable(u0, self.mats_h[k].to(u0.dtype), self.mats_w[k].to(u0.dtype))

    def trajectory(self, u0: Tensor) -> Tensor:
        """All levels at once: (K+1, *u0.shape), level 0 first."""
        self._check_size(u0)
        x = dct2(u0)
        shape = (self.K + 1,) + (1,) * (u0.dim() - 2) + self.image_size
        return idct2(x[None] * self.decays.to(u0.dtype).reshape(shape))

    def marginal(self, u0: Tensor, k, generator=None) -> Tensor:
        """A draw from q(u_k | u_0) = N(F(t_k) u_0, sigma^2 I)."""
        uk = self.blur(u0, k)
        return uk + self.sigma * randn_like(uk, generator)

    # -- interface shared by all processes ----------------------------------------------
    def sample_levels(self, n: int, generator=None) -> Tensor:
        """k ~ U{1..K}. Level K is included: the original release never trained it."""
        return torch.randint(1, self.K + 1, (n,), device=self.device, generator=generator)

    def training_pair(self, u0: Tensor, k: Tensor, generator=None):
        """(network input u_k + eps, regression target u_{k-1}) of Alg. 1."""
        self._check_size(u0)
        k = self._levels(k, u0.shape[0])
        uk = self.blur(u0, k)
        target = self.blur(u0, k - 1)
        return uk + self.sigma * randn_like(uk, generator), target

    def prior_sample(self, n: int, images, *, generator: torch.Generator | None = None,
                     delta: float | None = None) -> Tensor:
        """u_K ~ p(u_K): the KDE prior over blurred ``images`` (:mod:`ihdm_core.model.prior`)."""
        from .prior import kde_prior_sample

        return kde_prior_sample(self, images, n, delta=delta, generator=generator)[0]

    def predict(self, net, u: Tensor, k: Tensor) -> Tensor:
        """mu_theta(u, k) = u + f_theta(u, k): the skip connection of Eq. 8."""
        return u + net(u, k)

    def denoised(self, net, u: Tensor, k: int) -> Tensor:
        """mu_theta(u_k, k): the network's estimate of the less blurred u_{k-1}, which the reverse
        step moves to before it adds delta * noise. (IHDM has no one-step estimate of u_0.)"""
        kk = torch.full((u.shape[0],), int(k), device=u.device, dtype=torch.long)
        return self.predict(net, u, kk)

    def reverse_step(self, net, u: Tensor, k: int, noise: Tensor | None,
                     delta: float | None = None) -> Step:
        """u_{k-1} = mu_theta(u_k, k) + delta * noise (Alg. 2); no noise on the last step, as in
        App. B.1 and the 2023 release. Returns (u_{k-1}, mu_theta(u_k, k))."""
        mu = self.denoised(net, u, k)
        d = self.delta if delta is None else float(delta)
        if k == 1 or noise is None or d == 0:
            return Step(mu, mu)
        return Step(mu + d * noise, mu)

    def __repr__(self) -> str:
        return (f"HeatDissipation(image_size={self.image_size}, K={self.K}, "
                f"sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, sigma={self.sigma}, "
                f"delta={self.delta})")


def check_levels(k: Tensor, K: int) -> Tensor:
    """Raise unless every level lies in 0..K; on a GPU the check runs on the device, since
    a Python ``if`` on a CUDA tensor would sync the host every training step."""
    ok = ((k >= 0) & (k <= K)).all()
    if k.device.type == "cpu":
        if not ok:
            raise ValueError(f"levels must lie in 0..{K}")
    else:
        torch._assert_async(ok, f"levels must lie in 0..{K}")
    return k

