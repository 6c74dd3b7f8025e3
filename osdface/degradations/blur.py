"""Short-exposure turbulent PSFs and the spatially varying blur built from them.

PSFs
----
The pupil phase at a grid node is phi = sum_{j=4}^{J} a_j Z_j (Noll indices, J = 36 by default) with
a = R b (D/r0)^(5/6), b ~ N(0, I) and R R^T the Noll covariance of those modes (:mod:`.zernike`;
R is its Cholesky factor). Piston does nothing and the two tilts are left out because the tilt
field of :mod:`.tilt` moves the image instead. The incoherent PSF is

    h(theta) = | FT{ P(x) exp(i phi(x)) }(theta / lambda) |^2

with P the pupil transmission. The pupil is sampled with ``samples_across`` points over D (32: the
50%-energy radii of the tests change by under 1% from 24 to 32, while 16 is visibly too coarse at
D/r0 = 8); edge samples carry their fractional area inside the circle (8 x 8 sub-samples) so the
pupil's area and the diffraction rings are right despite the coarse grid.

Let q = lambda L / (D * pixel_pitch) be the number of image pixels per lambda/D (2 at 20 km with the
defaults, i.e. Nyquist; 4 at 40 km). Evaluating the PSF at pixel offsets k means evaluating the
pupil's DFT at frequencies k / (n q) cycles per pupil sample, n = samples_across; this is exactly
the FFT of the pupil zero-padded to n q samples (padding factor q) read at the pixels we keep. We
evaluate it as a matrix DFT, E = M E0 M^T with M[k, x] = exp(-2 pi i k x / (n q)), only at the
K x K pixels kept: that allows any (non-integer) q, never computes the discarded part of the padded
grid, and costs two small batched matrix products per node. When q < 2 the PSF is first computed on
a grid u times finer (u odd, q u >= 2, so the padding stays at least 2x) and then summed over u x u
blocks, i.e. integrated over each detector pixel.

The PSF is cut to K x K pixels, K = 2 h + 1 with h = round(q max(6, 2 D/r0)) pixels (then enlarged
until the patch size 2s + 2h below is a fast FFT length), and renormalised to unit sum. The half-width
is 6 lambda/D (or 2 lambda/r0 for strong turbulence): at L = 20..40 km it keeps about 98% of the
light (Parseval on the pupil gives the total; the tests check >= 97%), the rest being far diffraction
rings and speckle halo; renormalising keeps the flux.

Spatially varying blur
----------------------
Nodes sit on a square grid ``spacing`` pixels apart (about 2 D in the object plane, 16 pixels at the
default pitch), at rows/columns 0, s, 2s, ... covering the image. Each node k has its own PSF h_k
(independent draws: the higher-order modes decorrelate within about one aperture diameter) and a
window w_k(x, y) = tri((x - x_k) / s) tri((y - y_k) / s), tri(t) = max(0, 1 - |t|). The windows form a
partition of unity (sum_k w_k = 1 at every pixel), and the output is

    out = sum_k w_k (h_k * image)

(the PSF at a pixel is the bilinear interpolation of the four surrounding node PSFs). Each h_k has
unit sum, so a constant image stays constant exactly, whatever the PSFs.

Only the 2s x 2s support of w_k is needed from h_k * image, so each node convolves one
(2s + 2h) x (2s + 2h) patch of the (reflect-padded) image by FFT and keeps the 2s x 2s of the result
that the circular wrap does not touch. This is the exact blended model (no truncated PSF basis),
batched over nodes; at 512 x 512 it is 33 x 33 small FFTs per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F

from .zernike import noll_covariance, zernike

FIRST_BLUR_MODE = 4  # Noll index of defocus: piston and the two tilts are not part of the blur
PUPIL_SAMPLES = 32
_PUPIL_SUBSAMPLES = 8
_PSF_HALF_WIDTH_LAMBDA_OVER_D = 6.0
_PSF_HALF_WIDTH_LAMBDA_OVER_R0 = 2.0


@dataclass(frozen=True, eq=False)
class PsfModel:
    """What turns white noise into K x K node PSFs for one parameter set (tensors on one device)."""

    mixing: torch.Tensor  # (modes, modes) float32: Cholesky factor of the Noll covariance x (D/r0)^(5/6)
    basis: torch.Tensor  # (modes, n*n) float32: Z_j at the pupil samples (radians per unit a_j)
    amplitude: torch.Tensor  # (n*n,) float32: pupil transmission (fractional area at the edge)
    dft: torch.Tensor  # (u*K, n) complex64: M of the module docstring
    oversample: int  # u
    half_width: int  # h in pixels (K = 2h + 1)
    total_energy: float  # sum of |E|^2 over the whole PSF, on the fine grid (Parseval)

    @property
    def size(self) -> int:
        return 2 * self.half_width + 1

    @property
    def modes(self) -> int:
        return self.mixing.shape[0]

    def to(self, device: torch.device | str) -> PsfModel:
        return PsfModel(
            mixing=self.mixing.to(device),
            basis=self.basis.to(device),
            amplitude=self.amplitude.to(device),
            dft=self.dft.to(device),
            oversample=self.oversample,
            half_width=self.half_width,
            total_energy=self.total_energy,
        )

    def intensities(self, white: torch.Tensor) -> torch.Tensor:
        """Unnormalised PSFs (N, K, K) on the pixel grid from standard-normal ``white`` (N, modes).

        Entries sum to ``total_energy`` for a PSF with no light outside the K x K window.
        """
        coefficients = white @ self.mixing.T
        phase = coefficients @ self.basis
        field = torch.polar(self.amplitude.expand_as(phase), phase)
        n = math.isqrt(self.basis.shape[1])
        field = field.reshape(-1, n, n)
        focal = self.dft @ field @ self.dft.T  # (N, uK, uK)
        intensity = torch.view_as_real(focal).square().sum(dim=-1)
        u = self.oversample
        if u > 1:
            # Odd u: the centre pixel's u x u block is centred on the optical axis.
            intensity = intensity.reshape(-1, self.size, u, self.size, u).sum(dim=(2, 4))
        return intensity

    def psfs(self, white: torch.Tensor) -> torch.Tensor:
        """Unit-sum PSFs (N, K, K), centre at (h, h), from standard-normal ``white`` (N, modes)."""
        intensity = self.intensities(white)
        return intensity / intensity.sum(dim=(-2, -1), keepdim=True)


def pupil_samples(samples_across: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional pupil area, rho and theta at the centres of an n x n grid spanning the aperture."""
    n = samples_across
    centres = (np.arange(n) - (n - 1) / 2) / (n / 2)  # in units of the pupil radius
    x, y = np.meshgrid(centres, centres)
    offsets = ((np.arange(_PUPIL_SUBSAMPLES) + 0.5) / _PUPIL_SUBSAMPLES - 0.5) / (n / 2)
    sub_x = x[..., None, None] + offsets[None, None, None, :]
    sub_y = y[..., None, None] + offsets[None, None, :, None]
    area = (np.hypot(sub_x, sub_y) <= 1.0).mean(axis=(-2, -1))
    return area, np.hypot(x, y), np.arctan2(y, x)


# Patches are at most 2 x 512 + 257 pixels (osdface.degradations.turbulence checks the node spacing
# and the PSF width first); the search below counts up one by one, so its start is bounded.
_MAX_FFT_LENGTH = 1 << 14


def _fast_fft_length(minimum: int) -> int:
    """Smallest n >= minimum with n = 2^a 3^b 5^c, a >= 2 (lengths like 82 or 90 are 2-3x slower)."""
    if minimum > _MAX_FFT_LENGTH:
        raise ValueError(f"patch of {minimum} pixels: the simulator supports up to {_MAX_FFT_LENGTH}")
    n = minimum
    while True:
        rest = n
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1 and n % 4 == 0:
            return n
        n += 1


def psf_reach(pixels_per_lambda_over_d: float, d_over_r0: float) -> float:
    """The PSF's half-width in pixels before rounding (h is at least this, rounded)."""
    reach = max(_PSF_HALF_WIDTH_LAMBDA_OVER_D, _PSF_HALF_WIDTH_LAMBDA_OVER_R0 * d_over_r0)
    return pixels_per_lambda_over_d * reach


def psf_oversampling(pixels_per_lambda_over_d: float) -> int:
    """u of the module docstring: 1 from 2 pixels per lambda/D, else the smallest odd u with q u >= 2."""
    q = pixels_per_lambda_over_d
    return 1 if q >= 2.0 else 2 * math.ceil((2.0 / q - 1.0) / 2.0) + 1


def psf_half_width(pixels_per_lambda_over_d: float, d_over_r0: float, spacing: int) -> int:
    """h of the module docstring, in pixels, enlarged so that 2s + 2h is a fast FFT length."""
    needed = max(1, round(psf_reach(pixels_per_lambda_over_d, d_over_r0)))
    return (_fast_fft_length(2 * spacing + 2 * needed) - 2 * spacing) // 2


def build_psf_model(
    d_over_r0: float,
    pixels_per_lambda_over_d: float,
    half_width: int,
    *,
    max_noll_index: int = 36,
    samples_across: int = PUPIL_SAMPLES,
) -> PsfModel:
    """PSF model on CPU for K x K PSFs, K = 2 ``half_width`` + 1."""
    q, h = pixels_per_lambda_over_d, half_width
    u = psf_oversampling(q)
    # The sampled pupil makes the PSF periodic with period n q u fine samples: keep the crop within
    # two-thirds of it so that aliased light from outside the crop stays negligible.
    n = max(samples_across, math.ceil(1.5 * (2 * h + 1) / q))
    n += n % 2

    area, rho, theta = pupil_samples(n)
    modes = range(FIRST_BLUR_MODE, max_noll_index + 1)
    # Evaluate at rho <= 1 in partially covered edge samples: the polynomials are defined on the disc.
    basis = np.stack([zernike(j, np.minimum(rho, 1.0), theta).ravel() for j in modes])
    cholesky = np.linalg.cholesky(noll_covariance(FIRST_BLUR_MODE, max_noll_index))
    period = n * q * u
    fine = np.arange(-(u * (2 * h + 1) // 2), u * (2 * h + 1) // 2 + 1)
    dft = np.exp(-2j * np.pi * np.outer(fine, np.arange(n) - (n - 1) / 2) / period)
    return PsfModel(
        mixing=torch.from_numpy(cholesky * d_over_r0 ** (5.0 / 6.0)).float(),
        basis=torch.from_numpy(basis).float(),
        amplitude=torch.from_numpy(area.ravel()).float(),
        dft=torch.from_numpy(dft).to(torch.complex64),
        oversample=u,
        half_width=h,
        total_energy=float(period**2 * np.sum(area**2)),
    )


@dataclass(frozen=True, eq=False)
class BlurGrid:
    """Node layout and reflect-padding indices for one image size (tensors on one device)."""

    spacing: int  # s, pixels between nodes
    half_width: int  # h, PSF half-width in pixels
    nodes_y: int
    nodes_x: int
    rows: torch.Tensor  # (Hp,) int64: source row of each padded row (reflect)
    cols: torch.Tensor  # (Wp,) int64
    window: torch.Tensor  # (2s, 2s) float32: one node's window over its support

    @property
    def patch(self) -> int:
        return 2 * self.spacing + 2 * self.half_width

    def to(self, device: torch.device | str) -> BlurGrid:
        return BlurGrid(
            spacing=self.spacing,
            half_width=self.half_width,
            nodes_y=self.nodes_y,
            nodes_x=self.nodes_x,
            rows=self.rows.to(device),
            cols=self.cols.to(device),
            window=self.window.to(device),
        )


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Reflect-101 (edge sample not repeated) for any padding width."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    return np.where(index < size, index, period - index)


def build_blur_grid(height: int, width: int, spacing: int, half_width: int) -> BlurGrid:
    s, h = spacing, half_width
    nodes_y = math.ceil((height - 1) / s) + 1
    nodes_x = math.ceil((width - 1) / s) + 1
    # Node a's patch starts at padded row a*s and covers image rows [a s - s - h, a s + s + h).
    rows = _reflect(np.arange(-(s + h), nodes_y * s + h), height)
    cols = _reflect(np.arange(-(s + h), nodes_x * s + h), width)
    tri = 1.0 - np.abs(np.arange(2 * s) - s) / s
    return BlurGrid(
        spacing=s,
        half_width=h,
        nodes_y=nodes_y,
        nodes_x=nodes_x,
        rows=torch.from_numpy(rows),
        cols=torch.from_numpy(cols),
        window=torch.from_numpy(np.outer(tri, tri)).float(),
    )


def _convolve_tiles(patches: torch.Tensor, kernels: torch.Tensor, first: int, count: int) -> torch.Tensor:
    """Circular convolution of P x P ``patches`` (C, R, X, P, P) with ``kernels`` (R, X, K, K) zero-padded
    to P x P at the bottom right, cropped to rows and columns [first, first + count): (C, R, X, count, count).

    The inverse transform is pruned: the column transform runs on all frequencies, the row transform
    only on the ``count`` rows kept (about a third less work than a full inverse).
    """
    if patches.device.type == "cpu":
        return _convolve_tiles_scipy(patches, kernels, first, count)
    return _convolve_tiles_torch(patches, kernels, first, count)


def _convolve_tiles_scipy(
    patches: torch.Tensor, kernels: torch.Tensor, first: int, count: int
) -> torch.Tensor:
    # On CPU, scipy's pocketfft with worker threads and numpy's in-place product run these batches of
    # small transforms about 2x faster than torch (measured on the 2-core dev machine).
    size, keep, workers = patches.shape[-1], slice(first, first + count), torch.get_num_threads()
    spectrum = scipy.fft.rfft2(patches.numpy(), workers=workers)
    np.multiply(spectrum, scipy.fft.rfft2(kernels.numpy(), s=(size, size), workers=workers), out=spectrum)
    rows = scipy.fft.ifft(spectrum, axis=-2, workers=workers)[..., keep, :]
    return torch.from_numpy(scipy.fft.irfft(rows, n=size, axis=-1, workers=workers)[..., keep])


def _convolve_tiles_torch(
    patches: torch.Tensor, kernels: torch.Tensor, first: int, count: int
) -> torch.Tensor:
    size, keep = patches.shape[-1], slice(first, first + count)
    spectrum = torch.fft.rfft2(patches) * torch.fft.rfft2(kernels, s=(size, size))
    rows = torch.fft.ifft(spectrum, dim=-2)[..., keep, :]
    return torch.fft.irfft(rows, n=size, dim=-1)[..., keep]


# Node rows convolved at once: bounds the patch spectra to a few tens of MB per chunk.
_CHUNK_ELEMENTS = 8_000_000


def spatially_varying_blur(image: torch.Tensor, psfs: torch.Tensor, grid: BlurGrid) -> torch.Tensor:
    """out = sum_k w_k (h_k * image) for one frame.

    ``image``: (C, H, W) float32; ``psfs``: (nodes_y, nodes_x, K, K) unit-sum, centred at (h, h);
    returns (C, H, W) float32 on the same device.
    """
    channels, height, width = image.shape
    s, h, size = grid.spacing, grid.half_width, grid.patch
    padded = image.index_select(1, grid.rows).index_select(2, grid.cols)
    canvas = image.new_zeros(channels, (grid.nodes_y + 1) * s, (grid.nodes_x + 1) * s)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // (channels * grid.nodes_x * size * size))
    for top in range(0, grid.nodes_y, rows_per_chunk):
        bottom = min(grid.nodes_y, top + rows_per_chunk)
        band = padded[:, top * s : (bottom - 1) * s + size]
        patches = band.unfold(1, size, s).unfold(2, size, s)  # (C, rows, nodes_x, P, P)
        # Circular convolution with the kernel at [0, K): outputs [2h, 2h + 2s) saw no wrap, and
        # output 2h + t is the centred convolution at patch pixel h + t, i.e. image row a s - s + t.
        tiles = _convolve_tiles(patches, psfs[top:bottom], 2 * h, 2 * s) * grid.window
        n_rows = bottom - top
        columns = tiles.permute(0, 3, 4, 1, 2).reshape(1, channels * 4 * s * s, n_rows * grid.nodes_x)
        folded = F.fold(
            columns, output_size=((n_rows + 1) * s, (grid.nodes_x + 1) * s), kernel_size=2 * s, stride=s
        )
        canvas[:, top * s : (bottom + 1) * s] += folded[0]
    return canvas[:, s : s + height, s : s + width]
