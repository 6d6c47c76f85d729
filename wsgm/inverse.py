"""Inverse problems by projection onto the measurements (Song et al. 2021, appendix I).

A task measures a linear, orthogonally projected part of an image: inpainting keeps the pixels of
a mask (a centred square hole, or random blocks), colorization keeps the gray component
g = (r + g + b)/√3 of a 3-channel image (one axis of an orthonormal channel transform; the two
chroma axes are unknown), super-resolution keeps the level-L wavelet low-pass. Inside the reverse sampler, after every predictor and corrector step,
the known part of the state x_t is replaced by a forward-noised measurement m(t) y + s(t) z and
the unknown part kept; the sample ends with a hard projection (known part = y exactly).

Every model samples in normalized coordinates (per-band mean/std of ``wsgm decompose``), so each
task gives, per band of the cascade, a :class:`Projector` in those coordinates:

- J = 0 (SGM): the band is the normalized image ``low0``.
- J ≥ 1 (WSGM, scale by scale): the known part maps onto the coarse low-pass ``low{J}`` and onto
  the detail bands ``detail{k}``. For colorization this holds for any wavelet (the per-channel
  DWT commutes with a channel transform); normalization is per channel, so the gray axis becomes
  u ∝ w ⊙ σ in normalized coordinates. For inpainting it holds when the mask is constant on the
  2^J × 2^J Haar blocks: a level-k coefficient is then known or unknown as a whole. Other masks
  (or longer wavelets) are refused with :class:`InverseError`.

Tasks are named in the config (``inverse.tasks``) and reach the stage as a spec dict
(``wsgm.specs.inverse_task``): {"kind": "inpaint", "mask": "center", "side": 16},
{"kind": "inpaint", "mask": "blocks", "block": 4, "fraction": 0.5}, {"kind": "colorize"} or
{"kind": "superres", "levels": 2, "wavelet": "haar"}.
Random block masks are a pure function of (seed, image index), the same for every experiment.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch

from wsgm import wavelets
from wsgm.bands import normalize
from wsgm.errors import UserError
from wsgm.runtime import derive_seed
from wsgm.samplers import PROJECTABLE

KINDS = ("inpaint", "colorize", "superres")
MASKS = ("center", "blocks")


class InverseError(UserError, ValueError):
    """A task that cannot be run on this experiment or data (shown as one line)."""


class Projector:
    """Orthogonal projection ``P`` onto the known subspace of one band, with the known values.

    ``target = P(x_clean)``; ``noisy`` replaces the known part by a forward-noised target,
    ``hard`` by the target itself.
    """

    def __init__(self, apply, target: torch.Tensor, full: bool = False) -> None:
        self.apply, self.target, self.full = apply, target, full  # full: the whole band is known

    def noisy(self, x: torch.Tensor, m: float, s: float, z: torch.Tensor) -> torch.Tensor:
        return x - self.apply(x) + (m * self.target + s * self.apply(z)).to(x.dtype)

    def hard(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.apply(x) + self.target.to(x.dtype)


class Task(ABC):
    """A measurement operator on N×C×L×L images; ``index`` = the images' indices in their dataset."""

    kind = ""

    def __init__(self, spec: dict, channels: int, size: int, seed: int) -> None:
        self.spec, self.channels, self.size, self.seed = spec, channels, size, seed

    @abstractmethod
    def measure(self, x: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        """The stored measurement y of images x."""

    @abstractmethod
    def known(self, x: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        """P(x): the known part of images x, in pixel space."""

    def check(self, J: int, wavelet: str) -> None:
        """Raise InverseError unless the known part maps onto the bands of a J-level cascade."""

    @abstractmethod
    def bands(self, y: torch.Tensor, index: np.ndarray, J: int, wavelet: str, stats: dict) -> dict:
        """{band name: Projector in that band's normalized coordinates} for the cascade's draws."""

    @abstractmethod
    def unknown_fraction(self, index: np.ndarray) -> float:
        """Fraction of the image's dimensions that are unknown (for per-dimension errors)."""

    def y_shape(self) -> tuple[int, int, int]:
        """Shape of one image's measurement y."""
        return self.channels, self.size, self.size


def _band_values(y: torch.Tensor, J: int, wavelet: str) -> dict[str, torch.Tensor]:
    """The measurement's bands by name: low{J} and detail1..detail{J} (low0 when J = 0)."""
    low, details = wavelets.wavedec2(y, wavelet, J)
    return {f"low{J}": low, **{f"detail{k + 1}": d for k, d in enumerate(details)}}


class Inpaint(Task):
    kind = "inpaint"

    def mask(self, index: np.ndarray, device=None) -> torch.Tensor:
        """N×1×L×L, 1 = known pixel."""
        L, spec = self.size, self.spec
        if spec["mask"] == "center":
            side = spec["side"]
            if not 0 < side < L:
                raise InverseError(f"inpainting hole side {side} must be in 1..{L - 1} for {L}x{L} images")
            m = torch.ones(1, 1, L, L)
            lo = (L - side) // 2
            m[..., lo:lo + side, lo:lo + side] = 0
            m = m.expand(len(index), 1, L, L)
        elif spec["mask"] == "blocks":
            b = spec["block"]
            if b < 1 or L % b:
                raise InverseError(f"inpainting block {b} must divide the image side {L}")
            rows = []
            for i in index:
                rng = np.random.default_rng(derive_seed(self.seed, "inverse-mask", int(i)))
                known = rng.random((L // b, L // b)) >= spec["fraction"]
                rows.append(np.kron(known, np.ones((b, b))))
            m = torch.from_numpy(np.stack(rows)[:, None].astype(np.float32))
        else:
            raise InverseError(f"unknown inpainting mask {spec['mask']!r}; use one of {MASKS}")
        return m.to(device).contiguous()

    def measure(self, x, index):
        return x * self.mask(index, x.device).to(x.dtype)

    def known(self, x, index):
        return self.measure(x, index)

    def check(self, J, wavelet):
        if J == 0:
            return
        if wavelet != "haar":
            raise InverseError(f"inpainting scale by scale needs Haar blocks; this experiment uses {wavelet} "
                               "(J >= 1). Fix: use wavelet: haar, or J: 0")
        b = 2**J
        if self.spec["mask"] == "blocks":
            aligned, what = self.spec["block"] % b == 0, f"blocks of side {self.spec['block']}"
        else:
            m = self.mask(np.arange(1)).reshape(1, 1, self.size // b, b, self.size // b, b)
            aligned = torch.equal(m.amin(dim=(3, 5)), m.amax(dim=(3, 5)))
            what = f"a centred hole of side {self.spec['side']}"
        if not aligned:
            raise InverseError(f"the inpainting mask ({what}) is not constant on the {b}x{b} Haar blocks of "
                               f"J = {J}, so its known part does not map onto the wavelet bands. Fix: a block "
                               f"size / hole side and position that are multiples of {b}, or J: 0")

    def bands(self, y, index, J, wavelet, stats):
        self.check(J, wavelet)
        m0 = self.mask(index, y.device).to(y.dtype)
        out = {}
        for name, band in _band_values(y, J, wavelet).items():
            k = J if name.startswith("low") else int(name[len("detail"):])
            mk = m0[..., ::2**k, ::2**k]
            target = mk * normalize(band, stats[name])
            out[name] = Projector(lambda x, mk=mk: x * mk.to(x.dtype), target)
        return out

    def unknown_fraction(self, index):
        return float(1 - self.mask(index).mean())


class Colorize(Task):
    """Known: the gray axis w = (1, 1, 1)/√3 of the channel space; unknown: the 2 chroma axes."""

    kind = "colorize"
    W = (1 / math.sqrt(3),) * 3

    def __init__(self, spec, channels, size, seed):
        if channels != 3:
            raise InverseError(f"colorization needs 3-channel images; this data has {channels} channel(s)")
        super().__init__(spec, channels, size, seed)

    def _w(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.W, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)

    def measure(self, x, index):
        return (x * self._w(x)).sum(dim=1, keepdim=True)

    def known(self, x, index):
        return self._w(x) * self.measure(x, index)

    def bands(self, y, index, J, wavelet, stats):
        out = {}
        for name, band in _band_values(y, J, wavelet).items():  # band: N×k×h×w (k orientations)
            k = band.shape[1]
            mean = torch.tensor(stats[name]["mean"], dtype=y.dtype, device=y.device).view(k, 3)
            std = torch.tensor(stats[name]["std"], dtype=y.dtype, device=y.device).view(k, 3)
            w = torch.tensor(self.W, dtype=y.dtype, device=y.device)
            a = w * std  # gray = a · x_normalized + w · mean, per orientation
            norm = a.norm(dim=1)  # (k,)
            u = (a / norm[:, None]).view(1, 3 * k, 1, 1)  # unit gray axis, orientation-major
            coord = (band - (w * mean).sum(1).view(1, k, 1, 1)) / norm.view(1, k, 1, 1)

            def apply(x, u=u, k=k):
                n, _, h, wd = x.shape
                c = (x * u.to(x.dtype)).view(n, k, 3, h, wd).sum(2, keepdim=True)
                return (u.to(x.dtype).view(1, k, 3, 1, 1) * c).view(n, 3 * k, h, wd)

            out[name] = Projector(apply, (u * coord.repeat_interleave(3, dim=1)))
        return out

    def unknown_fraction(self, index):
        return 2 / 3

    def y_shape(self):
        return 1, self.size, self.size


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class SuperRes(Task):
    """Known: the level-L low-pass of the task's wavelet (an image 2^L times smaller).

    WSGM with J >= L: low{J} and the detail bands of levels L+1..J are known whole (the coarse
    draws are skipped: the cascade starts from the real low-pass); with
    J < L (and SGM) the low{J} band is known on its level-(L-J) low-pass subspace, which commutes
    with the per-channel normalization (constants lie in it).
    """

    kind = "superres"

    def measure(self, x, index):
        return wavelets.lowpass(x, self.spec["levels"], self.spec["wavelet"])

    def _up(self, low: torch.Tensor, levels: int) -> torch.Tensor:
        """The projection back to full size: inverse DWT with zero detail bands."""
        for _ in range(levels):
            low = wavelets.idwt2(low, torch.zeros(low.shape[0], 3 * low.shape[1], *low.shape[2:],
                                                  dtype=low.dtype, device=low.device), self.spec["wavelet"])
        return low

    def known(self, x, index):
        return self._up(self.measure(x, index), self.spec["levels"])

    def check(self, J, wavelet):
        if self.spec["levels"] < 1 or self.size % 2 ** self.spec["levels"]:
            raise InverseError(f"super-resolution by 2^{self.spec['levels']} does not fit {self.size}x{self.size} images")
        if J > 0 and wavelet != self.spec["wavelet"]:
            raise InverseError(f"super-resolution from a {self.spec['wavelet']} low-pass needs the same wavelet "
                               f"scale by scale; this experiment uses {wavelet}. Fix: match inverse wavelets")

    def bands(self, y, index, J, wavelet, stats):
        self.check(J, wavelet)
        L = self.spec["levels"]
        if J >= L:
            low, details = wavelets.wavedec2(y, wavelet, J - L)
            out = {f"low{J}": Projector(_identity, normalize(low, stats[f"low{J}"]), full=True)}
            for k, d in enumerate(details, start=L + 1):
                out[f"detail{k}"] = Projector(_identity, normalize(d, stats[f"detail{k}"]), full=True)
            return out  # detail bands of levels 1..L: unknown

        def apply(x):
            return self._up(wavelets.lowpass(x, L - J, self.spec["wavelet"]), L - J)
        return {f"low{J}": Projector(apply, normalize(self._up(y, L - J), stats[f"low{J}"]))}

    def unknown_fraction(self, index):
        return 1 - 4.0 ** -self.spec["levels"]

    def y_shape(self):
        side = self.size >> self.spec["levels"]
        return self.channels, side, side


def build(spec: dict, channels: int, size: int, seed: int) -> Task:
    kinds = {"inpaint": Inpaint, "colorize": Colorize, "superres": SuperRes}
    if spec.get("kind") not in kinds:
        raise InverseError(f"unknown inverse task kind {spec.get('kind')!r}; use one of {KINDS}")
    return kinds[spec["kind"]](spec, channels, size, seed)
