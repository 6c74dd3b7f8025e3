"""Anisoplanatic atmospheric-turbulence simulator (after Chimitt & Chan, Optical Engineering 2020).

A horizontal imaging path: object plane at range L, clear aperture D, wavelength lambda, constant
refractive-index structure constant Cn2. Each simulated frame is one short exposure: a spatially
correlated tilt field moves the image (:mod:`.tilt`), then a spatially varying, tilt-free
short-exposure PSF blurs it (:mod:`.blur`). The same atmosphere applies to all three colour channels.

Fried parameter
---------------
For a spherical wave and constant Cn2 along the path,

    r0 = (0.423 k^2 Cn2 integral_0^L (z/L)^(5/3) dz)^(-3/5) = (0.423 (3/8) k^2 Cn2 L)^(-3/5)
       = (0.1586 k^2 Cn2 L)^(-3/5),   k = 2 pi / lambda,

so D/r0 grows as L^(3/5): 2.01 at 20 km and 3.04 at 40 km with the defaults. As in Chimitt & Chan,
this spherical-wave r0 then sets the (plane-wave) Noll statistics of the tilt and of the higher modes.

Geometry
--------
The object-plane pixel pitch is ``object_width / W`` (0.0258 m by default, i.e. 13.2 m across a
512-pixel image). It is held fixed as L changes, so the blur grows with L: the diffraction scale is
q = lambda L / (D pitch) pixels per lambda/D (2.0 at 20 km: Nyquist; 4.0 at 40 km), and a tilt of theta
radians moves the image by theta L / pitch pixels. Per-axis tilt standard deviation (pixels):

    sigma_px = sqrt(0.182) (lambda/D) (D/r0)^(5/6) L / pitch      (1.53 at 20 km, 4.32 at 40 km)

Order of operations and conventions
-----------------------------------
``warped(x, y) = image(x - shift_x(x, y), y - shift_y(x, y))`` (bilinear, reflected at the border):
shifts are the apparent displacement of the scene in pixels, +x to the right, +y down. The warped image
is then blurred with the blended node PSFs. Everything that depends only on the parameters and the
image size (tilt spectrum, Noll factorisation, Zernike basis, DFT matrices, node grid) is built once
and cached per (parameters, size, device); after that a frame costs one tilt FFT, one warp, the node
PSFs (two small batched matrix products) and the batched patch FFTs of the blur.

Limits
------
``check_set_up`` refuses, before anything is allocated, parameters whose set-up would take
gigabytes or minutes (a short path, a tiny aperture, a huge scene or node spacing), with a
``ValueError`` that names the parameter, its value and its usable range for the image size.

Random numbers come from a CPU ``torch.Generator`` seeded with ``seed`` and are then moved to the
image's device, so the same seed gives the same atmosphere on CPU and CUDA (up to float rounding).
In a batch, each frame gets its own atmosphere, drawn in order from that generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch

from osdface.images.conversion import fields_like, from_frames, to_frames

from .blur import (
    BlurGrid,
    PsfModel,
    build_blur_grid,
    build_psf_model,
    psf_half_width,
    psf_oversampling,
    psf_reach,
    spatially_varying_blur,
)
from .tilt import TILT_VARIANCE_COEFFICIENT, circulant_amplitude, sample_unit_tilt
from .tilt import clear_cache as clear_tilt_cache
from .warp import warp

DEFAULT_PIXEL_PITCH = 0.0258  # metres in the object plane: Nyquist for D = 0.2034 m at 20 km
MIN_IMAGE_SIDE = 32
# The set-up's sizes, checked before anything is allocated (check_set_up): each bounds the memory
# or the time of one part, and a parameter outside its range gets a ValueError that names it.
# Samples across a PSF (its pixels times the oversampling u below 2 pixels per lambda/D): about
# L = 110 km at the default pitch.
MAX_PSF_SIZE = 257
# Below this many pixels per lambda/D the PSF is computed on a grid u >= 2 / q times finer, and its
# cost grows as u^2: at 0.25 (L = 2.5 km at the default pitch) u = 9, about 2.5x the default's.
MIN_PIXELS_PER_LAMBDA_OVER_D = 0.25
_MIN_NODE_SPACING = 4  # pixels; finer node grids would cost a PSF per few pixels for no visible gain
# Each node convolves a (2s + 2h)-pixel patch: 512 is already one PSF per 512 x 512 block.
MAX_NODE_SPACING = 512
# The tilt table reaches the scene's diagonal in aperture diameters, and takes time in proportion
# (about a minute at 1024 on 2 cores; 65 at the defaults on 512 x 512).
MAX_SCENE_DIAMETERS = 1024.0
_SPHERICAL_WAVE_R0_COEFFICIENT = 0.423 * 3.0 / 8.0  # = 0.1586


@dataclass(frozen=True)
class TurbulenceParams:
    """Physical set-up of the imaging path (SI units). Frozen: it keys the set-up caches.

    ``object_width``: width of the imaged scene in metres; None means ``0.0258 m x image width``.
    ``psf_grid_spacing``: distance between PSF nodes, in aperture diameters.
    ``max_noll_index``: highest Zernike mode (Noll index) of the blur.
    """

    propagation_length: float = 30_000.0
    aperture_diameter: float = 0.2034
    wavelength: float = 0.525e-6
    cn2: float = 1e-16
    object_width: float | None = None
    psf_grid_spacing: float = 2.0
    max_noll_index: int = 36

    def __post_init__(self) -> None:
        for name in ("propagation_length", "aperture_diameter", "wavelength", "cn2", "psf_grid_spacing"):
            object.__setattr__(self, name, _positive_float(name, getattr(self, name)))
        if self.object_width is not None:
            object.__setattr__(self, "object_width", _positive_float("object_width", self.object_width))
        j = self.max_noll_index
        if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 4 <= j <= 120:
            raise ValueError(f"max_noll_index must be an int in [4, 120], got {j!r}")
        object.__setattr__(self, "max_noll_index", int(j))

    @property
    def wavenumber(self) -> float:
        return 2.0 * math.pi / self.wavelength

    @property
    def fried_parameter(self) -> float:
        """r0 in metres (spherical wave, constant Cn2)."""
        return (_SPHERICAL_WAVE_R0_COEFFICIENT * self.wavenumber**2 * self.cn2 * self.propagation_length) ** (
            -3.0 / 5.0
        )

    @property
    def d_over_r0(self) -> float:
        return self.aperture_diameter / self.fried_parameter

    @property
    def tilt_std_radians(self) -> float:
        """Per-axis standard deviation of the angle of arrival."""
        lambda_over_d = self.wavelength / self.aperture_diameter
        return math.sqrt(TILT_VARIANCE_COEFFICIENT) * lambda_over_d * self.d_over_r0 ** (5.0 / 6.0)

    def pixel_pitch(self, width: int) -> float:
        """Object-plane size of one pixel (metres) for an image ``width`` pixels wide."""
        return DEFAULT_PIXEL_PITCH if self.object_width is None else self.object_width / width

    def pixels_per_lambda_over_d(self, width: int) -> float:
        return self.wavelength * self.propagation_length / (self.aperture_diameter * self.pixel_pitch(width))

    def tilt_std_pixels(self, width: int) -> float:
        return self.tilt_std_radians * self.propagation_length / self.pixel_pitch(width)

    def node_spacing_pixels(self, width: int) -> int:
        spacing = self.psf_grid_spacing * self.aperture_diameter / self.pixel_pitch(width)
        return max(_MIN_NODE_SPACING, round(spacing))


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


@dataclass(frozen=True)
class TurbulenceResult:
    """``image`` in the input's format; ``shift_x``/``shift_y``: (H, W) or (B, H, W) float32 pixels."""

    image: np.ndarray | torch.Tensor
    shift_x: np.ndarray | torch.Tensor
    shift_y: np.ndarray | torch.Tensor


@dataclass(frozen=True, eq=False)
class _Plan:
    """Everything that depends only on (parameters, image size), on one device."""

    tilt_std_px: float
    tilt_amplitude: torch.Tensor  # (2H, 2W) float32
    tilt_negative_mass: float
    psf: PsfModel
    grid: BlurGrid


def check_set_up(params: TurbulenceParams, height: int, width: int) -> None:
    """A ``ValueError`` naming the parameter, its value and its usable range when the set-up for
    an H x W image would outgrow the limits above; computed from the parameters alone."""
    pitch = params.pixel_pitch(width)
    diagonal = math.hypot(height, width) * pitch / params.aperture_diameter
    if not diagonal <= MAX_SCENE_DIAMETERS:
        given = (
            f"object_width {params.object_width} m"
            if params.object_width is not None
            else f"the default pixel pitch {DEFAULT_PIXEL_PITCH} m (object_width {pitch * width:.4g} m)"
        )
        widest = MAX_SCENE_DIAMETERS * params.aperture_diameter * width / math.hypot(height, width)
        raise ValueError(
            f"{given} with aperture_diameter {params.aperture_diameter} m makes the diagonal of a "
            f"{width}x{height} scene {diagonal:.4g} aperture diameters; the simulator supports up to "
            f"{MAX_SCENE_DIAMETERS:g}: object_width must be at most {widest:.4g} m here (or aperture_diameter "
            f"at least {math.hypot(height, width) * pitch / MAX_SCENE_DIAMETERS:.4g} m)"
        )
    q = params.pixels_per_lambda_over_d(width)
    if not q >= MIN_PIXELS_PER_LAMBDA_OVER_D:
        shortest = MIN_PIXELS_PER_LAMBDA_OVER_D * params.aperture_diameter * pitch / params.wavelength
        raise ValueError(
            f"propagation_length {params.propagation_length} m gives {q:.3g} pixels per lambda/D "
            f"(aperture_diameter {params.aperture_diameter} m, wavelength {params.wavelength} m, pixel pitch "
            f"{pitch:.4g} m); the simulator needs at least {MIN_PIXELS_PER_LAMBDA_OVER_D}: propagation_length "
            f"must be at least {shortest:.4g} m here (or use a smaller object_width)"
        )
    spacing = params.psf_grid_spacing * params.aperture_diameter / pitch
    if not spacing <= MAX_NODE_SPACING:
        raise ValueError(
            f"psf_grid_spacing {params.psf_grid_spacing} aperture diameters puts the PSF nodes {spacing:.4g} "
            f"pixels apart (aperture_diameter {params.aperture_diameter} m, pixel pitch {pitch:.4g} m); the "
            f"simulator supports up to {MAX_NODE_SPACING} pixels: psf_grid_spacing must be in "
            f"(0, {MAX_NODE_SPACING * pitch / params.aperture_diameter:.4g}] here (or use a larger object_width)"
        )
    samples = _psf_samples(q, params.d_over_r0)
    if not samples <= MAX_PSF_SIZE:
        raise _too_wide(params, width, samples)


def _psf_samples(q: float, d_over_r0: float) -> float:
    """Samples across a PSF before its width is enlarged for the FFT: u (2 h + 1)."""
    reach = psf_reach(q, d_over_r0)
    if not math.isfinite(reach):  # round() refuses it
        return math.inf
    return float(psf_oversampling(q) * (2 * max(1, round(reach)) + 1))


def _too_wide(params: TurbulenceParams, width: int, samples: float) -> ValueError:
    """PSFs wider than ``MAX_PSF_SIZE`` samples would take gigabytes and minutes per frame: the
    error names the usable propagation lengths (searched by bisection, as D/r0 grows with L)."""
    pitch, q = params.pixel_pitch(width), params.pixels_per_lambda_over_d(width)
    shortest = MIN_PIXELS_PER_LAMBDA_OVER_D * params.aperture_diameter * pitch / params.wavelength

    def fits(length: float) -> bool:
        other = replace(params, propagation_length=length)
        return _psf_samples(other.pixels_per_lambda_over_d(width), other.d_over_r0) <= MAX_PSF_SIZE

    usable = "no propagation_length fits with this cn2 and pixel pitch"
    if fits(shortest):
        low, high = shortest, params.propagation_length
        for _ in range(60):
            middle = math.sqrt(low * high)
            low, high = (middle, high) if fits(middle) else (low, middle)
        usable = f"propagation_length must be in [{shortest:.4g}, {low:.4g}] m here"
    oversampling = psf_oversampling(q)
    size = f"{samples / oversampling:.4g} pixels wide"
    if oversampling > 1:
        size += f", computed {oversampling} times finer ({samples:.4g} samples across)"
    return ValueError(
        f"propagation_length {params.propagation_length} m with a pixel pitch of {pitch:.4g} m gives PSFs "
        f"{size} (D/r0 {params.d_over_r0:.3g}, {q:.3g} pixels per lambda/D); the simulator supports up to "
        f"{MAX_PSF_SIZE}: {usable}, or use a larger object_width (coarser pixels)"
    )


@lru_cache(maxsize=8)
def _cpu_plan(params: TurbulenceParams, height: int, width: int) -> _Plan:
    check_set_up(params, height, width)  # before anything below allocates or searches
    pitch = params.pixel_pitch(width)
    amplitude, negative_mass = circulant_amplitude(height, width, pitch / params.aperture_diameter)
    q, spacing = params.pixels_per_lambda_over_d(width), params.node_spacing_pixels(width)
    half_width = psf_half_width(q, params.d_over_r0, spacing)
    if psf_oversampling(q) * (2 * half_width + 1) > MAX_PSF_SIZE:  # once enlarged for the FFT
        raise _too_wide(params, width, psf_oversampling(q) * (2 * half_width + 1))
    psf = build_psf_model(params.d_over_r0, q, half_width, max_noll_index=params.max_noll_index)
    grid = build_blur_grid(height, width, spacing, half_width)
    return _Plan(
        tilt_std_px=params.tilt_std_pixels(width),
        tilt_amplitude=torch.from_numpy(amplitude).float(),
        tilt_negative_mass=negative_mass,
        psf=psf,
        grid=grid,
    )


@lru_cache(maxsize=8)
def _device_plan(params: TurbulenceParams, height: int, width: int, device: str) -> _Plan:
    plan = _cpu_plan(params, height, width)
    return _Plan(
        tilt_std_px=plan.tilt_std_px,
        tilt_amplitude=plan.tilt_amplitude.to(device),
        tilt_negative_mass=plan.tilt_negative_mass,
        psf=plan.psf.to(device),
        grid=plan.grid.to(device),
    )


def _plan(params: TurbulenceParams, height: int, width: int, device: torch.device) -> _Plan:
    if device.type == "cpu":
        return _cpu_plan(params, height, width)
    return _device_plan(params, height, width, str(device))


def clear_caches() -> None:
    """Forget every cached set-up, the parameter-free tilt table included (for timing set-up)."""
    clear_tilt_cache()
    _cpu_plan.cache_clear()
    _device_plan.cache_clear()


def describe(params: TurbulenceParams, height: int = 512, width: int = 512) -> dict[str, float | int]:
    """Derived quantities for an image size (builds, or reuses, the cached set-up)."""
    plan = _cpu_plan(params, height, width)
    return {
        "d_over_r0": params.d_over_r0,
        "r0_m": params.fried_parameter,
        "pixel_pitch_m": params.pixel_pitch(width),
        "pixels_per_lambda_over_d": params.pixels_per_lambda_over_d(width),
        "tilt_std_px": plan.tilt_std_px,
        "tilt_clipped_eigen_mass": plan.tilt_negative_mass,
        "node_spacing_px": plan.grid.spacing,
        "nodes": plan.grid.nodes_y * plan.grid.nodes_x,
        "psf_size_px": plan.psf.size,
        "psf_oversample": plan.psf.oversample,
        "patch_px": plan.grid.patch,
    }


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    return int(seed)


def sample_tilt_fields(
    params: TurbulenceParams, height: int, width: int, count: int, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` independent (shift_x, shift_y) pairs, each (count, H, W) float32 pixels, on CPU."""
    plan = _cpu_plan(params, height, width)
    generator = torch.Generator().manual_seed(_check_seed(seed))
    noise = torch.randn((count, 2, 2 * height, 2 * width), generator=generator)
    unit_x, unit_y = sample_unit_tilt(plan.tilt_amplitude, height, width, noise)
    return unit_x * plan.tilt_std_px, unit_y * plan.tilt_std_px


def simulate_turbulence(
    image: np.ndarray | torch.Tensor,
    params: TurbulenceParams,
    seed: int = 0,
    return_fields: bool = False,
) -> np.ndarray | torch.Tensor | TurbulenceResult:
    """One short-exposure turbulent frame of ``image`` (formats: :mod:`._images`), same shape and dtype.

    With ``return_fields`` a :class:`TurbulenceResult` also carries the tilt shifts in pixels.
    """
    if not isinstance(params, TurbulenceParams):
        raise ValueError(f"params must be a TurbulenceParams, got {type(params).__name__}")
    generator = torch.Generator().manual_seed(_check_seed(seed))
    frames, fmt = to_frames(image, min_side=MIN_IMAGE_SIDE)
    count, _, height, width = frames.shape
    plan = _plan(params, height, width, frames.device)
    grid, psf = plan.grid, plan.psf

    outputs, shifts_x, shifts_y = [], [], []
    for frame in frames:
        tilt_noise = torch.randn((2, 2 * height, 2 * width), generator=generator)
        psf_noise = torch.randn((grid.nodes_y * grid.nodes_x, psf.modes), generator=generator)
        unit_x, unit_y = sample_unit_tilt(plan.tilt_amplitude, height, width, tilt_noise.to(frames.device))
        shift_x, shift_y = unit_x * plan.tilt_std_px, unit_y * plan.tilt_std_px
        psfs = psf.psfs(psf_noise.to(frames.device)).reshape(grid.nodes_y, grid.nodes_x, psf.size, psf.size)
        outputs.append(spatially_varying_blur(warp(frame, shift_x, shift_y), psfs, grid))
        shifts_x.append(shift_x)
        shifts_y.append(shift_y)

    out = from_frames(torch.stack(outputs), fmt)
    if not return_fields:
        return out
    return TurbulenceResult(
        image=out,
        shift_x=fields_like(torch.stack(shifts_x), fmt),
        shift_y=fields_like(torch.stack(shifts_y), fmt),
    )
