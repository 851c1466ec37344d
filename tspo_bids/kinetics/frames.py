"""Frame timing, radioactive decay and frame weights (methods.md section 1).

Times here are **minutes from injection**. BIDS sidecars give seconds relative to ``TimeZero``;
:meth:`FrameTiming.from_bids` converts them once, at the boundary:
``t_min = (FrameTimesStart - InjectionStart) / 60``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tspo_bids.errors import InputError

__all__ = [
    "HALF_LIFE_MIN",
    "FrameTiming",
    "bids_timing_problems",
    "frame_weights",
    "normalise_radionuclide",
]

#: Frames closer than this (minutes, = 6 ms) count as touching, not overlapping: sidecars are rounded.
OVERLAP_TOLERANCE_MIN = 1e-4


class _HalfLifeTable(dict):
    """``dict`` of half-lives in minutes whose look-ups accept any radionuclide spelling."""

    def __getitem__(self, name: str) -> float:
        return super().__getitem__(normalise_radionuclide(name))

    def __contains__(self, name: object) -> bool:
        try:
            return super().__contains__(normalise_radionuclide(str(name)))
        except InputError:
            return False

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[name] if name in self else default


#: Physical half-lives in minutes (NNDC). One table for the whole project: C-11 is 20.334 min
#: (some tools use 20.36-20.4; < 0.5 % difference at 60 min, see methods.md section 1).
HALF_LIFE_MIN: dict[str, float] = _HalfLifeTable(
    {
        "C11": 20.334,
        "F18": 109.77,
        "O15": 2.0373,
        "N13": 9.965,
        "Ga68": 67.71,
        "Rb82": 1.2575,
        "Cu64": 762.06,
        "Zr89": 4704.5,
        "I124": 6013.4,
    }
)

_ELEMENT_DIGITS = re.compile(r"^([A-Za-z]{1,2})(\d{1,3})$")
_DIGITS_ELEMENT = re.compile(r"^(\d{1,3})([A-Za-z]{1,2})$")


def normalise_radionuclide(name: str) -> str:
    """Canonical key of :data:`HALF_LIFE_MIN` for a BIDS ``TracerRadionuclide`` spelling.

    ``"C11"``, ``"11C"``, ``"[11C]"``, ``"C-11"``, ``"c 11"`` all give ``"C11"``.

    Raises
    ------
    InputError
        When the spelling is not a known radionuclide.
    """
    if not isinstance(name, str):
        raise InputError(f"unknown TracerRadionuclide {name!r}: expected a string such as 'C11' or 'F18'")
    compact = re.sub(r"[\[\]\s\-_^]", "", name)
    match = _ELEMENT_DIGITS.match(compact) or _DIGITS_ELEMENT.match(compact)
    if match is not None:
        first, second = match.groups()
        element, mass = (first, second) if first.isalpha() else (second, first)
        key = f"{element.capitalize()}{int(mass)}"
        if dict.__contains__(HALF_LIFE_MIN, key):
            return key
    known = ", ".join(dict.keys(HALF_LIFE_MIN))
    raise InputError(f"unknown TracerRadionuclide {name!r}; known: {known}")


def _readonly(values: ArrayLike) -> NDArray[np.float64]:
    array = np.array(values, dtype=float, copy=True)
    array.setflags(write=False)
    return array


def _timing_problems_min(start_min: NDArray[np.float64], end_min: NDArray[np.float64]) -> list[str]:
    """Problems of frame start/end times (minutes); frames are numbered from 1 in messages."""
    problems: list[str] = []
    if start_min.ndim != 1 or end_min.ndim != 1:
        return ["frame start and end times must be 1-D sequences"]
    if start_min.size != end_min.size:
        return [f"{start_min.size} frame start times but {end_min.size} frame end times"]
    if start_min.size == 0:
        return ["no frames"]
    if not (np.all(np.isfinite(start_min)) and np.all(np.isfinite(end_min))):
        return ["frame times contain NaN or infinite values"]
    duration = end_min - start_min
    for index in np.flatnonzero(duration == 0):
        problems.append(f"frame {index + 1} has zero duration")
    for index in np.flatnonzero(duration < 0):
        problems.append(f"frame {index + 1} has negative duration ({duration[index] * 60:g} s)")
    for index in np.flatnonzero(np.diff(start_min) <= 0):
        problems.append(f"frame start times do not increase at frames {index + 1} and {index + 2}")
    overlapping = np.flatnonzero(start_min[1:] < end_min[:-1] - OVERLAP_TOLERANCE_MIN)
    for index in overlapping:
        if start_min[index + 1] > start_min[index]:
            problems.append(f"frames {index + 1} and {index + 2} overlap")
    return problems


@dataclass(frozen=True, eq=False)
class FrameTiming:
    """Immutable frame schedule of one PET series, in minutes from injection.

    Parameters
    ----------
    start_min, end_min
        Frame start and end times, minutes from injection (frames need not be contiguous or equal).
    radionuclide
        Any spelling accepted by :func:`normalise_radionuclide`; stored in canonical form.
    decay_corrected
        Whether the stored image values are decay-corrected (BIDS ``ImageDecayCorrected``).
    decay_correction_time_min
        Time the stored values are decay-corrected to, minutes from injection
        (BIDS ``ImageDecayCorrectionTime - InjectionStart``). Ignored when ``decay_corrected`` is False.
    half_life_min
        Override of the tabulated half-life (minutes); ``None`` uses :data:`HALF_LIFE_MIN`.

    Raises
    ------
    InputError
        On inconsistent frame times or an unknown radionuclide.
    """

    start_min: NDArray[np.float64]
    end_min: NDArray[np.float64]
    radionuclide: str = "C11"
    decay_corrected: bool = True
    decay_correction_time_min: float = 0.0
    half_life_min: float | None = None
    mid_min: NDArray[np.float64] = field(init=False, repr=False, compare=False)
    duration_min: NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        start = _readonly(self.start_min)
        end = _readonly(self.end_min)
        problems = _timing_problems_min(start, end)
        if problems:
            raise InputError("frame timing: " + "; ".join(problems))
        object.__setattr__(self, "start_min", start)
        object.__setattr__(self, "end_min", end)
        object.__setattr__(self, "mid_min", _readonly(start + (end - start) / 2))
        object.__setattr__(self, "duration_min", _readonly(end - start))
        key = normalise_radionuclide(self.radionuclide)
        object.__setattr__(self, "radionuclide", key)
        half_life = HALF_LIFE_MIN[key] if self.half_life_min is None else float(self.half_life_min)
        if not (math.isfinite(half_life) and half_life > 0):
            raise InputError(f"frame timing: half-life must be a positive number of minutes, got {half_life!r}")
        object.__setattr__(self, "half_life_min", half_life)
        if not math.isfinite(float(self.decay_correction_time_min)):
            raise InputError("frame timing: decay correction time must be finite")
        object.__setattr__(self, "decay_correction_time_min", float(self.decay_correction_time_min))
        object.__setattr__(self, "decay_corrected", bool(self.decay_corrected))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bids(
        cls, sidecar: Mapping[str, Any], n_volumes: int | None = None, source: str = "PET sidecar"
    ) -> FrameTiming:
        """Build the timing from a BIDS PET sidecar (seconds from ``TimeZero``).

        Parameters
        ----------
        sidecar
            The parsed ``*_pet.json``.
        n_volumes
            Number of volumes of the image, checked against the frame lists when given.
        source
            Name of the sidecar used in error messages (e.g. the file name).

        Raises
        ------
        InputError
            ``"{source}: problem; problem; ..."`` listing every problem of :func:`bids_timing_problems`.
        """
        problems = bids_timing_problems(sidecar, n_volumes)
        if problems:
            raise InputError(f"{source}: " + "; ".join(problems))
        injection_s = float(sidecar["InjectionStart"])
        start_s = np.asarray(sidecar["FrameTimesStart"], dtype=float)
        duration_s = np.asarray(sidecar["FrameDuration"], dtype=float)
        decay_corrected = bool(sidecar["ImageDecayCorrected"])
        correction_s = sidecar.get("ImageDecayCorrectionTime", injection_s) if decay_corrected else injection_s
        return cls(
            start_min=(start_s - injection_s) / 60.0,
            end_min=(start_s + duration_s - injection_s) / 60.0,
            radionuclide=str(sidecar["TracerRadionuclide"]),
            decay_corrected=decay_corrected,
            decay_correction_time_min=(float(correction_s) - injection_s) / 60.0,
        )

    # ------------------------------------------------------------------ derived values
    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.start_min.size)

    @property
    def decay_constant_per_min(self) -> float:
        """Decay constant lambda = ln 2 / half-life, 1/min."""
        return math.log(2.0) / float(self.half_life_min)  # type: ignore[arg-type]

    def decay_correction_factors(self) -> NDArray[np.float64]:
        """Decay-correction factor of each frame, from counts as acquired to injection time.

        ``DCF_i = lambda*dur_i / (exp(-lambda*ts_i) - exp(-lambda*te_i))`` (methods.md section 1): the
        factor that turns a frame's decay-uncorrected average into its injection-time value, whatever
        the sidecar says the stored image holds. Poisson weights and the noise model need it.
        """
        lam = self.decay_constant_per_min
        x = lam * self.duration_min
        # exp(-l*ts) - exp(-l*te) = exp(-l*ts) * (1 - exp(-x)); expm1 keeps short frames exact
        dcf = x * np.exp(lam * self.start_min) / -np.expm1(-x)
        return _readonly(dcf)

    def correction_to_injection(self) -> NDArray[np.float64]:
        """Per-frame factor that brings the *stored* image values to injection-time decay correction."""
        if not self.decay_corrected:
            return self.decay_correction_factors()
        factor = math.exp(self.decay_constant_per_min * self.decay_correction_time_min)
        return _readonly(np.full(self.n_frames, factor))

    def to_injection_decay_corrected(self, data: ArrayLike, axis: int = 0) -> NDArray[np.float64]:
        """Return ``data`` decay-corrected to injection time, whatever the sidecar said.

        Parameters
        ----------
        data
            Stored frame values (any activity unit); frames along ``axis``.
        axis
            The frame axis.
        """
        values = np.asarray(data, dtype=float)
        if values.ndim == 0 or values.shape[axis] != self.n_frames:
            raise InputError(
                f"data have {values.shape} values but the frame timing has {self.n_frames} frames along axis {axis}"
            )
        shape = [1] * values.ndim
        shape[axis] = self.n_frames
        return values * self.correction_to_injection().reshape(shape)


# ---------------------------------------------------------------------- BIDS sidecar checks
def _number_list(sidecar: Mapping[str, Any], key: str, problems: list[str]) -> NDArray[np.float64] | None:
    if key not in sidecar or sidecar[key] is None:
        problems.append(f"{key} missing")
        return None
    raw = sidecar[key]
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = [raw]
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence | np.ndarray):
        problems.append(f"{key} must be a list of numbers (seconds)")
        return None
    try:
        values = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        problems.append(f"{key} must be a list of numbers (seconds)")
        return None
    if values.ndim != 1 or values.size == 0:
        problems.append(f"{key} must be a non-empty list of numbers (seconds)")
        return None
    if not np.all(np.isfinite(values)):
        problems.append(f"{key} contains non-finite values")
        return None
    return values


def _number(sidecar: Mapping[str, Any], key: str, problems: list[str], required: bool = True) -> float | None:
    if key not in sidecar or sidecar[key] is None:
        if required:
            problems.append(f"{key} missing")
        return None
    raw = sidecar[key]
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        problems.append(f"{key} must be a number of seconds, got {raw!r}")
        return None
    return float(raw)


#: A frame schedule ending later than this many half-lives after injection (activity below 1e-6 of the
#: injected) is taken for a unit error, e.g. milliseconds for seconds.
MAX_SCAN_HALF_LIVES = 20.0


def bids_timing_problems(sidecar: Mapping[str, Any], n_volumes: int | None = None) -> list[str]:
    """Every timing problem of one BIDS PET sidecar, each a short sentence; ``[]`` when fine.

    Checks ``FrameTimesStart``, ``FrameDuration`` (present, numeric, same length, one per volume when
    ``n_volumes`` is given, positive durations, increasing starts, no overlaps), ``InjectionStart``,
    ``ImageDecayCorrected`` (boolean), ``ImageDecayCorrectionTime`` (needed when the image is
    decay-corrected) and ``TracerRadionuclide`` (known). Frames are numbered from 1.
    """
    problems: list[str] = []
    starts = _number_list(sidecar, "FrameTimesStart", problems)
    durations = _number_list(sidecar, "FrameDuration", problems)
    schedule_ok = False
    if starts is not None and durations is not None:
        if starts.size != durations.size:
            problems.append(
                f"FrameTimesStart has {starts.size} values but FrameDuration has {durations.size}"
            )
        else:
            schedule_problems = _timing_problems_min(starts / 60.0, (starts + durations) / 60.0)
            problems.extend(schedule_problems)
            schedule_ok = not schedule_problems and starts.size > 0
    if n_volumes is not None:
        for key, values in (("FrameTimesStart", starts), ("FrameDuration", durations)):
            if values is not None and values.size != n_volumes:
                problems.append(f"{key} has {values.size} values but the image has {n_volumes} volumes")
    injection_s = _number(sidecar, "InjectionStart", problems)
    if schedule_ok and injection_s is not None:
        # Known from the sidecar alone, so said here rather than by the models after preprocessing.
        if starts[0] < injection_s:
            problems.append(f"frame 1 starts {injection_s - starts[0]:g} s before InjectionStart; the models start at "
                            "injection: drop the pre-injection frames from the image and the sidecar")
        scan_end_min = (starts[-1] + durations[-1] - injection_s) / 60.0
        try:
            half_life_min = HALF_LIFE_MIN[normalise_radionuclide(sidecar.get("TracerRadionuclide"))]
        except (InputError, KeyError, TypeError, AttributeError):
            half_life_min = None  # reported below when unknown
        if half_life_min is not None and scan_end_min > MAX_SCAN_HALF_LIVES * half_life_min:
            problems.append(f"the last frame ends {scan_end_min / 60:.0f} h after injection, more than "
                            f"{MAX_SCAN_HALF_LIVES:g} half-lives of the radionuclide; FrameTimesStart and "
                            "FrameDuration must be in seconds (milliseconds given?)")
    corrected = sidecar.get("ImageDecayCorrected")
    if "ImageDecayCorrected" not in sidecar or corrected is None:
        problems.append("ImageDecayCorrected missing")
    elif not isinstance(corrected, bool):
        problems.append(f"ImageDecayCorrected must be true or false, got {corrected!r}")
    elif corrected:
        _number(sidecar, "ImageDecayCorrectionTime", problems)
    radionuclide = sidecar.get("TracerRadionuclide")
    if radionuclide is None:
        problems.append("TracerRadionuclide missing")
    else:
        try:
            normalise_radionuclide(radionuclide)
        except InputError:
            problems.append(f"unknown TracerRadionuclide {radionuclide!r}")
    return problems


# ---------------------------------------------------------------------- weights
def poisson_weights(
    duration_min: NDArray[np.float64], tac: NDArray[np.float64], dcf: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``w_i = dur_i / (C_i * DCF_i)``, C floored at 1 % of its maximum, normalised to max 1.

    Falls back to ``w_i = dur_i`` (normalised) when the TAC has no positive value.
    Zero-length frames get weight 0.
    """
    duration = np.asarray(duration_min, dtype=float)
    concentration = np.asarray(tac, dtype=float)
    peak = np.max(concentration) if concentration.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        weights = np.clip(duration, 0.0, None)
    else:
        floored = np.maximum(concentration, 0.01 * peak)
        weights = np.clip(duration, 0.0, None) / (floored * np.asarray(dcf, dtype=float))
    top = np.max(weights) if weights.size else 0.0
    if not np.isfinite(top) or top <= 0:
        raise InputError("frame weights: all frames have zero duration")
    return weights / top


def frame_weights(timing: FrameTiming, whole_brain_tac: ArrayLike) -> NDArray[np.float64]:
    """Poisson frame weights of methods.md section 1, maximum 1.

    Parameters
    ----------
    timing
        The frame schedule (durations and decay factors).
    whole_brain_tac
        Whole-brain TAC decay-corrected to injection, one value per frame (any activity unit).

    Returns
    -------
    ndarray
        ``w_i = dur_i / (C_wb,i * DCF_i)`` with ``C_wb`` floored at 1 % of its maximum, normalised to
        max 1; ``w_i = dur_i`` (normalised) when the TAC has no positive value.
    """
    tac = np.asarray(whole_brain_tac, dtype=float)
    if tac.shape != (timing.n_frames,):
        raise InputError(
            f"frame weights: whole-brain TAC has shape {tac.shape} but there are {timing.n_frames} frames"
        )
    if not np.all(np.isfinite(tac)):
        raise InputError("frame weights: whole-brain TAC contains NaN or infinite values")
    return poisson_weights(timing.duration_min, tac, timing.decay_correction_factors())
