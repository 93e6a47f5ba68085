"""A batched torch backend for the procedural augmenter: the same op dicts, a whole batch at once.

Why: online augmentation draws a fresh variation at every step (600 steps x 64 images per
classifier), and albumentations spends ~0.35-0.6 ms of Python per 8x8 image on it, which made
augmentation, not training, the cost of the benchmark's augmented arms. Here each image's
parameters are still drawn from its own numpy Generator (so a draw is a pure function of its
rng, whatever batch it lands in), but the pixels of the whole batch move in a few tensor ops.

It implements the subset of albumentations ops synth's presets and policy search use, with
albumentations' parameter meanings (ranges, `p`, fractions of the image size); it is not
bit-identical to albumentations (interpolation and rounding differ in detail). Any other op
is a ConfigError naming the supported ones: use `backend: albumentations` for those.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synth.errors import ConfigError

Params = dict[str, Any]


def _range(value: Any, name: str, symmetric: bool = False) -> tuple[float, float]:
    """albumentations' range convention: a number x means (-x, x) for symmetric limits, else (x, x)."""
    if isinstance(value, (int, float)):
        return (-float(value), float(value)) if symmetric else (float(value), float(value))
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number or a [low, high] pair, got {value!r}") from None
    if lo > hi:
        raise ConfigError(f"{name}: low {lo} > high {hi}")
    return lo, hi


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[0] != r[1] else r[0]


# ---------------------------------------------------------------- parameter draws (per image)
def _lerp(r: tuple[float, float], u: float) -> float:
    return r[0] + (r[1] - r[0]) * u


def _affine_params(op: Params, rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """(sx, sy, tx, ty, rotate, shear_x, shear_y) from one draw of 7 uniforms (pixels, radians)."""
    _, h, w = shape
    u = rng.random(7)
    sx, sy = _lerp(op["scale"], u[0]), _lerp(op["scale"], u[1])
    # whole working-size pixels, truncated toward zero, as albumentations does (the presets were tuned on it)
    return np.array([sx, sx if op["keep_ratio"] else sy, int(_lerp(op["translate_percent"], u[2]) * w),
                     int(_lerp(op["translate_percent"], u[3]) * h), math.radians(_lerp(op["rotate"], u[4])),
                     -math.radians(_lerp(op["shear"], u[5])), -math.radians(_lerp(op["shear"], u[6]))])


def _affine_inverse(p: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(N, 2, 3) output->input pixel matrices of the warps x -> Sh R S (x - c) + c + t, all at once.

    albumentations' conventions (its presets were tuned on them): R turns by -angle in image
    coordinates (counter-clockwise on screen) and the drawn shear is negated.
    """
    h, w = hw
    sx, sy, tx, ty, rot, shx, shy = p.T
    c, s = torch.cos(rot), torch.sin(rot)
    one = torch.ones_like(sx)
    rot_m = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)
    shear_m = torch.stack([torch.stack([one, torch.tan(shx)], -1), torch.stack([torch.tan(shy), one], -1)], -2)
    linear = shear_m @ rot_m @ torch.diag_embed(torch.stack([sx, sy], -1))
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=p.dtype)
    inv = torch.linalg.inv(linear)
    shift = centre - (inv @ (centre + torch.stack([tx, ty], -1))[..., None])[..., 0]
    return torch.cat([inv, shift[..., None]], -1)


def _crop_params(op: Params, rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """RandomResizedCrop as the output->input matrix of a crop box (10 tries, then the whole image)."""
    _, h, w = shape
    for _ in range(10):
        area = _u(rng, op["scale"]) * h * w
        ratio = math.exp(_u(rng, (math.log(op["ratio"][0]), math.log(op["ratio"][1]))))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            break
    else:
        x0, y0, cw, ch = 0, 0, w, h
    ow, oh = op["size"][1], op["size"][0]
    return np.array([[cw / ow, 0, x0 + (cw / ow - 1) / 2], [0, ch / oh, y0 + (ch / oh - 1) / 2]])


def _elastic_params(op: Params, rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    fields = rng.standard_normal((2, *shape[1:]), dtype=np.float32)
    return fields / max(float(np.abs(fields).max()), 1e-6)


def _bc_params(op: Params, rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[float, float]:
    u = rng.random(2)
    return 1.0 + _lerp(op["contrast_limit"], u[0]), _lerp(op["brightness_limit"], u[1])


def _blur_params(op: Params, rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[int, float]:
    lo, hi = (int(v) for v in op["blur_limit"])
    sizes = [k for k in range(lo, hi + 1) if k % 2 == 1] or [max(3, lo | 1)]
    return int(sizes[int(rng.integers(len(sizes)))]), _u(rng, op["sigma_limit"])


def _noise_params(op: Params, rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    u = rng.random(2)
    std, mean = _lerp(op["std_range"], u[0]), _lerp(op["mean_range"], u[1])
    return (mean + std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def _dropout_params(op: Params, rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    _, h, w = shape
    n = int(rng.integers(op["num_holes_range"][0], op["num_holes_range"][1] + 1))
    holes = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        hh = max(1, int(h * _u(rng, op["hole_height_range"])))
        hw_ = max(1, int(w * _u(rng, op["hole_width_range"])))
        y0, x0 = int(rng.integers(0, h - hh + 1)), int(rng.integers(0, w - hw_ + 1))
        holes[i] = (y0, x0, y0 + hh, x0 + hw_)
    return holes


# ---------------------------------------------------------------- batched application
def _pixel_grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ys, xs): the pixel-centre coordinates of an h x w image, each (h, w)."""
    return torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")


def _sample_at(x: torch.Tensor, src_x: torch.Tensor, src_y: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of each image at input pixel coordinates (N, oh, ow), zeros outside.

    The one place that maps pixel centres to grid_sample's [-1, 1] (align_corners=False).
    """
    h, w = x.shape[2:]
    grid = torch.stack([(2 * src_x + 1) / w - 1, (2 * src_y + 1) / h - 1], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _warp(x: torch.Tensor, inv: torch.Tensor, out_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """Resample each image by its output->input pixel matrix (bilinear, zeros outside)."""
    n, _, h, w = x.shape
    oh, ow = out_hw or (h, w)
    ys, xs = _pixel_grid(oh, ow)
    pts = torch.stack([xs.flatten(), ys.flatten(), torch.ones(oh * ow)])  # (3, P)
    src = (inv.float() @ pts).view(n, 2, oh, ow)  # in input pixels
    return _sample_at(x, src[:, 0], src[:, 1])


def _gaussian_kernels(sizes: Sequence[int], sigmas: Sequence[float], k: int) -> torch.Tensor:
    """(N, k) 1-D Gaussian kernels, each of its own odd size, zero-padded to width k."""
    r = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    out = torch.exp(-(r[None] ** 2) / (2 * torch.tensor(sigmas, dtype=torch.float32)[:, None] ** 2))
    out = out * (r[None].abs() <= (torch.tensor(sizes)[:, None] - 1) / 2)
    return out / out.sum(1, keepdim=True)


def _separable_blur(x: torch.Tensor, kernels: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """Blur image i (all channels) with kernels[i] along both axes; one (1, k) kernel blurs all alike.

    Per-image kernels run as one grouped conv per axis; a shared kernel as a plain batched conv,
    which is several times faster (the elastic fields all share theirs).
    """
    n, c, h, w = x.shape
    k = kernels.shape[1]
    if len(kernels) == 1:
        y = F.pad(x.reshape(n * c, 1, h, w), (k // 2, k // 2, k // 2, k // 2), mode=padding_mode)
        y = F.conv2d(F.conv2d(y, kernels.view(1, 1, 1, k)), kernels.view(1, 1, k, 1))
        return y.view(n, c, h, w)
    weight = kernels.repeat_interleave(c, 0)  # (N*C, k)
    y = F.pad(x.reshape(1, n * c, h, w), (k // 2, k // 2, k // 2, k // 2), mode=padding_mode)
    y = F.conv2d(y, weight.view(n * c, 1, 1, k), groups=n * c)
    y = F.conv2d(y, weight.view(n * c, 1, k, 1), groups=n * c)
    return y.view(n, c, h, w)


def _apply_affine(x: torch.Tensor, params: list, op: Params) -> torch.Tensor:
    return _warp(x, _affine_inverse(torch.from_numpy(np.stack(params)), tuple(x.shape[2:])))


def _apply_crop(x: torch.Tensor, params: list, op: Params) -> torch.Tensor:
    out = _warp(x, torch.from_numpy(np.stack(params)), tuple(op["size"]))
    if out.shape[2:] != x.shape[2:]:  # the op's size differs from the working size: back to it
        out = F.interpolate(out, size=x.shape[2:], mode="bilinear", align_corners=False)
    return out


def _apply_elastic(x: torch.Tensor, params: list, op: Params) -> torch.Tensor:
    h, w = x.shape[2:]
    sigma = float(op["sigma"])
    k = min(int(2 * math.ceil(4 * sigma) + 1), 2 * min(h, w) - 1) | 1  # cv2's automatic size for float fields
    fields = _separable_blur(torch.from_numpy(np.stack(params)), _gaussian_kernels([k], [sigma], k), "replicate")
    ys, xs = _pixel_grid(h, w)
    return _sample_at(x, xs + fields[:, 0] * float(op["alpha"]), ys + fields[:, 1] * float(op["alpha"]))


def _apply_bc(x: torch.Tensor, params: list, op: Params) -> torch.Tensor:
    ab = torch.tensor(params, dtype=torch.float32)
    return (x * ab[:, 0, None, None, None] + 255.0 * ab[:, 1, None, None, None]).clamp_(0, 255)


def _apply_blur(x: torch.Tensor, params: list, op: Params) -> torch.Tensor:
    sizes, sigmas = zip(*params, strict=True)
    k = max(sizes)
    if k // 2 >= min(x.shape[2:]):
        raise ConfigError(f"GaussianBlur kernel {k} is too large for a {tuple(x.shape[2:])} working image")
    return _separable_blur(x, _gaussian_kernels(sizes, sigmas, k), "reflect")


def _apply_noise(x: torch.Tensor, params: list, op: Params) -> torch.Tensor:
    return (x + 255.0 * torch.from_numpy(np.stack(params))).clamp_(0, 255)


def _apply_dropout(x: torch.Tensor, params: list, op: Params) -> torch.Tensor:
    x = x.clone()
    for i, holes in enumerate(params):
        for y0, x0, y1, x1 in holes.tolist():
            x[i, :, y0:y1, x0:x1] = float(op["fill"])
    return x


def _apply_hflip(x: torch.Tensor, params: list, op: Params) -> torch.Tensor:
    return x.flip(3)


# name -> (defaults (None: required), parameter draw, batched apply, range keys that are symmetric)
_OPS: dict[str, tuple[dict[str, Any], Callable, Callable, tuple[str, ...]]] = {
    "Affine": ({"scale": (1.0, 1.0), "translate_percent": (0.0, 0.0), "rotate": (0.0, 0.0), "shear": (0.0, 0.0),
                "keep_ratio": False, "p": 0.5}, _affine_params, _apply_affine, ()),
    "RandomResizedCrop": ({"size": None, "scale": (0.08, 1.0), "ratio": (0.75, 4 / 3), "p": 1.0},
                          _crop_params, _apply_crop, ()),
    "ElasticTransform": ({"alpha": 1.0, "sigma": 50.0, "p": 0.5}, _elastic_params, _apply_elastic, ()),
    "RandomBrightnessContrast": ({"brightness_limit": (-0.2, 0.2), "contrast_limit": (-0.2, 0.2), "p": 0.5},
                                 _bc_params, _apply_bc, ("brightness_limit", "contrast_limit")),
    "GaussianBlur": ({"blur_limit": (3, 7), "sigma_limit": (0.5, 3.0), "p": 0.5}, _blur_params, _apply_blur, ()),
    "GaussNoise": ({"std_range": (0.2, 0.44), "mean_range": (0.0, 0.0), "p": 0.5}, _noise_params, _apply_noise, ()),
    "CoarseDropout": ({"num_holes_range": (1, 2), "hole_height_range": (0.1, 0.2), "hole_width_range": (0.1, 0.2),
                       "fill": 0, "p": 0.5}, _dropout_params, _apply_dropout, ()),
    "HorizontalFlip": ({"p": 0.5}, lambda op, rng, shape: None, _apply_hflip, ()),
}
_RANGE_KEYS = {"scale", "translate_percent", "rotate", "shear", "ratio", "brightness_limit", "contrast_limit",
               "blur_limit", "sigma_limit", "std_range", "mean_range", "num_holes_range", "hole_height_range",
               "hole_width_range"}


def _normalise(i: int, op: Mapping[str, Any]) -> Params:
    """Validate one op dict against the supported set and fill albumentations' defaults."""
    params = dict(op)
    name = params.pop("name", None)
    if name not in _OPS:
        raise ConfigError(f"generator.ops[{i}]: the torch augmenter backend has no {name!r}; it supports "
                          f"{', '.join(_OPS)} (use backend: albumentations for other transforms)")
    defaults, _, _, symmetric = _OPS[name]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(f"generator.ops[{i}] ({name}): unsupported parameter(s) {unknown} for the torch backend; "
                          f"it takes {sorted(defaults)}")
    out: Params = {"name": name}
    for key, default in defaults.items():
        value = params.get(key, default)
        if value is None:
            raise ConfigError(f"generator.ops[{i}] ({name}): `{key}` is required")
        out[key] = _range(value, f"ops[{i}].{key}", key in symmetric) if key in _RANGE_KEYS else value
    if not 0.0 <= float(out["p"]) <= 1.0:
        raise ConfigError(f"generator.ops[{i}] ({name}): p must be in [0, 1], got {out['p']}")
    if name == "CoarseDropout" and not isinstance(out["fill"], (int, float)):
        raise ConfigError(f"generator.ops[{i}] (CoarseDropout): the torch backend fills with a number, got {out['fill']!r}")
    if name == "RandomResizedCrop":
        out["size"] = tuple(int(v) for v in params["size"])
    return out


#: how an image reaches the working size and back. "exact" (the default since 2026-12-04): nearest up by a
#: whole factor, area down, so a draw no op touched comes back unchanged. "bilinear" (before): bilinear up,
#: area down, which blurs every draw even when no op applies (a [1/8, 3/4, 1/8] kernel per axis at 4x); on
#: dev splits it cost `strong` 1.8-2.7 points on Fashion-MNIST (benchmarks/results/resample_check_*.md).
#: Recipes and checkpoints written before the option existed read as "bilinear".
RESAMPLE = ("bilinear", "exact")


def check_resample(resample: str, where: str = "generator.resample") -> str:
    """`resample` if it is one of RESAMPLE; a ConfigError naming `where` otherwise."""
    if resample not in RESAMPLE:
        raise ConfigError(f"{where} must be one of {RESAMPLE}, got {resample!r}")
    return resample


def working_hw(h: int, w: int, working_size: int, resample: str) -> tuple[int, int]:
    """The size ops run at: the shorter side at least `working_size`; for "exact", (h, w) times the whole factor
    nearest to reaching it (at least 1)."""
    scale = working_size / min(h, w)
    if resample == "exact":  # the whole factor nearest the working size: 8 px -> 32, 28 px -> 28 (as they are)
        k = max(1, round(scale))
        return h * k, w * k
    if scale <= 1:
        return h, w
    return round(h * scale), round(w * scale)


class TorchAugmenter:
    """Batched augmenter over synth's op dicts; `__call__` for one image, `batch` for many.

    Args:
        ops: transforms in order, e.g. `[{"name": "Affine", "rotate": [-10, 10], "p": 1.0}]`.
        working_size: augment at least at this size (shorter side), then resize back (area).
    """

    backend = "torch"

    def __init__(self, ops: Sequence[Mapping[str, Any]], working_size: int = 32, resample: str = "exact") -> None:
        if working_size <= 0:
            raise ConfigError(f"generator.working_size must be > 0, got {working_size}")
        self.ops = [dict(op) for op in ops]
        self.working_size, self.resample = int(working_size), check_resample(resample)
        self._ops = [_normalise(i, op) for i, op in enumerate(self.ops)]

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.batch(image[None], [rng])[0]

    def batch(self, images: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Augment uint8 (N, H, W, C) images, image i from rngs[i] only; returns a new uint8 array."""
        if images.ndim != 4 or len(images) != len(rngs):
            raise ValueError(f"batch wants (N, H, W, C) images and N rngs, got {images.shape} and {len(rngs)}")
        n, h, w, c = images.shape
        work_hw = working_hw(h, w, self.working_size, self.resample)
        draws = self._draw(rngs, (c, *work_hw))
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
            if work_hw != (h, w):
                x = (F.interpolate(x, size=work_hw, mode="nearest") if self.resample == "exact"
                     else F.interpolate(x, size=work_hw, mode="bilinear", align_corners=False))
            for op, (active, params) in zip(self._ops, draws, strict=True):
                if active:
                    idx = torch.tensor(active)
                    x[idx] = _OPS[op["name"]][2](x[idx], params, op)
            if x.shape[2:] != (h, w):
                x = F.interpolate(x, size=(h, w), mode="area")
            return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()

    def _draw(self, rngs: Sequence[np.random.Generator], shape: tuple[int, int, int]) -> list[tuple[list, list]]:
        """Per op: which images it applies to and their parameters, each from that image's own rng, in op order."""
        draws: list[tuple[list, list]] = [([], []) for _ in self._ops]
        for i, rng in enumerate(rngs):
            for (active, params), op in zip(draws, self._ops, strict=True):
                if rng.random() < op["p"]:
                    active.append(i)
                    params.append(_OPS[op["name"]][1](op, rng, shape))
        return draws

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "ops": self.ops, "working_size": self.working_size, "resample": self.resample}
