"""Known-truth tests of the SVCA4 reference region (methods.md section 3).

Voxel TACs are simulated with :mod:`tspo_bids.kinetics.simulation` on the [11C]-(R)-PK11195 schedule
(22 frames, 60 min): a non-binding grey-matter tissue (the true reference: the simulator's 2-tissue
reference region), white matter (SRTM R1 0.7, BPND 0.2), thalamus (R1 1.0, BPND 0.4), grey matter with
specific binding (R1 1.0, BPND 0.3; patients only) and blood (the Feng plasma input). Voxels are
partial-volume mixtures of these with Gaussian noise of variance ``a C DCF / dur`` (voxel COV ~10 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.optimize import nnls

from tspo_bids.errors import InputError
from tspo_bids.kinetics.frames import FrameTiming
from tspo_bids.kinetics.simulation import (
    SrtmParams,
    TwoTissueParams,
    add_noise,
    plasma_feng,
    scale_for_cov,
    simulate_tacs,
)
from tspo_bids.pet.svca import (
    SVCA_CLASSES,
    SvcaControl,
    background_class,
    build_svca_classes,
    gm_fraction,
    interpolate_classes,
    nnls_coefficients,
    normalise_tacs,
    svca_reference,
)

DURATIONS_S = [15] * 4 + [30] * 4 + [60] * 3 + [120] * 2 + [300] * 8 + [600]
END_MIN = np.cumsum(DURATIONS_S) / 60.0
TIMING = FrameTiming(start_min=END_MIN - np.array(DURATIONS_S) / 60.0, end_min=END_MIN)
REFERENCE = TwoTissueParams()
GM_BINDING_BPND = 0.3
#: k2' of the reference 2-tissue model seen as one tissue: k2 / (1 + k3 / k4), 1/min.
K2_REF = REFERENCE.k2 / (1.0 + REFERENCE.k3 / REFERENCE.k4)


def _frame_mean(curve, start_min: float, end_min: float) -> float:
    """Frame average of a function of time (trapezoid on a 0.05 s grid)."""
    times = np.linspace(start_min, end_min, max(int((end_min - start_min) * 1200), 2) + 1)
    return float(np.trapezoid(curve(times), times) / (end_min - start_min))


def tissue_curves() -> dict[str, np.ndarray]:
    targets = {
        "wm": SrtmParams(r1=0.7, k2=0.7 * K2_REF, bp_nd=0.2),
        "thalamus": SrtmParams(r1=1.0, k2=K2_REF, bp_nd=0.4),
        "gmbinding": SrtmParams(r1=1.0, k2=K2_REF, bp_nd=GM_BINDING_BPND),
    }
    curves = simulate_tacs(TIMING, targets, REFERENCE)
    curves["blood"] = np.array([_frame_mean(plasma_feng, a, b) for a, b in zip(TIMING.start_min, TIMING.end_min)])
    curves["gmref"] = curves.pop("reference")
    return curves


CURVES = tissue_curves()


@dataclass
class Brain:
    raw: np.ndarray  # (n_frames, n_voxels), kBq/mL
    gm_prob: np.ndarray
    wm_prob: np.ndarray
    thalamus: np.ndarray
    true_reference: np.ndarray  # voxels >= 90 % non-binding grey matter, no blood


def simulate_brain(rng: np.random.Generator, patient: bool, cov: float = 0.10,
                   binding_fraction: float = 0.35) -> Brain:
    """Mixture voxels of the tissue curves; tissue probabilities = true tissue fractions."""
    blocks = []  # (count, gmref, gmbinding, wm, thalamus, blood) fraction ranges
    n = {"gm": 1500, "wm": 1800, "mixed": 900, "thal": 250, "vessel": 120}
    gm_pure = rng.uniform(0.9, 1.0, n["gm"])
    binding = rng.random(n["gm"]) < (binding_fraction if patient else 0.0)  # cortex with binding (patients)
    blocks.append(np.stack([np.where(binding, 0, gm_pure), np.where(binding, gm_pure, 0), 1 - gm_pure,
                            np.zeros(n["gm"]), np.zeros(n["gm"])], 1))
    wm_pure = rng.uniform(0.9, 1.0, n["wm"])
    blocks.append(np.stack([1 - wm_pure, np.zeros(n["wm"]), wm_pure, np.zeros(n["wm"]), np.zeros(n["wm"])], 1))
    mix = rng.uniform(0.2, 0.9, n["mixed"])
    blocks.append(np.stack([mix, np.zeros(n["mixed"]), 1 - mix, np.zeros(n["mixed"]), np.zeros(n["mixed"])], 1))
    thal = rng.uniform(0.8, 1.0, n["thal"])
    blocks.append(np.stack([np.zeros(n["thal"]), np.zeros(n["thal"]), 1 - thal, thal, np.zeros(n["thal"])], 1))
    blood = rng.uniform(0.15, 0.5, n["vessel"])
    blocks.append(np.stack([1 - blood, np.zeros(n["vessel"]), np.zeros(n["vessel"]), np.zeros(n["vessel"]),
                            blood], 1))
    fractions = np.concatenate(blocks)  # (V, 5)
    basis = np.stack([CURVES["gmref"], CURVES["gmbinding"], CURVES["wm"], CURVES["thalamus"], CURVES["blood"]], 1)
    clean = basis @ fractions.T
    scale = scale_for_cov(CURVES["gmref"], TIMING, cov)
    raw = add_noise(clean, TIMING, scale, rng)
    gm_prob = fractions[:, 0] + fractions[:, 1]  # blood and thalamus are not GM
    thalamus = np.concatenate([np.zeros(sum(len(b) for b in blocks[:3]), bool), np.ones(n["thal"], bool),
                               np.zeros(n["vessel"], bool)])
    return Brain(raw=raw, gm_prob=np.clip(gm_prob, 0, 1), wm_prob=fractions[:, 2], thalamus=thalamus,
                 true_reference=fractions[:, 0] >= 0.9)


def control_classes(rng: np.random.Generator, n_controls: int = 5, cov: float = 0.10) -> np.ndarray:
    controls = []
    for _ in range(n_controls):
        brain = simulate_brain(rng, patient=False, cov=cov)
        controls.append(SvcaControl(normalise_tacs(brain.raw), brain.gm_prob, brain.wm_prob, brain.thalamus,
                                    TIMING.end_min))
    return build_svca_classes(controls)


# ----------------------------------------------------------------------------- normalisation
def test_normalise_tacs_is_a_per_frame_z_score_and_removes_frame_scaling() -> None:
    rng = np.random.default_rng(0)
    tacs = rng.gamma(2.0, 3.0, size=(6, 500))
    z = normalise_tacs(tacs)
    np.testing.assert_allclose(z.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(normalise_tacs(tacs * np.arange(1, 7)[:, None] + 5.0), z, atol=1e-12)
    tacs[0] = 0.0  # a frame before the tracer arrives
    assert np.all(normalise_tacs(tacs)[0] == 0.0)
    with pytest.raises(InputError, match="non-finite"):
        normalise_tacs(np.full((3, 4), np.nan))


# ----------------------------------------------------------------------------- NNLS
def test_enumerated_nnls_equals_scipy_nnls_on_random_problems() -> None:
    rng = np.random.default_rng(1)
    for trial in range(20):
        n_frames, n_classes = rng.integers(5, 30), rng.integers(1, 5)
        basis = rng.standard_normal((n_frames, n_classes))
        voxels = rng.standard_normal((n_frames, 200))  # many optima on the boundary
        voxels[:, :50] = basis @ rng.uniform(0, 2, (n_classes, 50)) + 0.1 * rng.standard_normal((n_frames, 50))
        ours = nnls_coefficients(voxels, basis, chunk_voxels=37)  # chunking exercised
        for v in range(voxels.shape[1]):
            reference, _ = nnls(basis, voxels[:, v])
            np.testing.assert_allclose(ours[:, v], reference, atol=1e-8, err_msg=f"trial {trial} voxel {v}")


def test_sum_to_one_nnls_equals_a_penalised_scipy_nnls_on_random_problems() -> None:
    """The enumerated fully constrained solution (b >= 0, sum b = 1) equals scipy's NNLS with the
    constraint appended as a heavily weighted row (weight 1e4: constraint error ~1e-8)."""
    rng = np.random.default_rng(11)
    for trial in range(10):
        n_frames, n_classes = rng.integers(5, 30), rng.integers(1, 5)
        basis = rng.standard_normal((n_frames, n_classes))
        voxels = rng.standard_normal((n_frames, 100))
        voxels[:, :40] = basis @ rng.dirichlet(np.ones(n_classes), 40).T + 0.1 * rng.standard_normal((n_frames, 40))
        ours = nnls_coefficients(voxels, basis, chunk_voxels=29, sum_to_one=True)
        np.testing.assert_allclose(ours.sum(0), 1.0, atol=1e-10)
        penalty = 1e4
        augmented = np.vstack([basis, penalty * np.ones((1, n_classes))])
        for v in range(voxels.shape[1]):
            reference, _ = nnls(augmented, np.append(voxels[:, v], penalty))
            np.testing.assert_allclose(ours[:, v], reference, atol=1e-6, err_msg=f"trial {trial} voxel {v}")


def test_z_scoring_maps_partial_volume_mixtures_to_the_same_mixture_of_normalised_curves() -> None:
    """Why the fractions must sum to one: z-scoring is affine per frame, so a raw voxel that is a mixture
    with fractions summing to one is exactly that mixture of the normalised tissue curves; fractions not
    summing to one are not (the offset -mean/sd of each frame enters)."""
    rng = np.random.default_rng(12)
    brain = simulate_brain(rng, patient=False, cov=0.0)
    mixture = 0.7 * CURVES["gmref"] + 0.3 * CURVES["wm"]
    z = normalise_tacs(np.column_stack([brain.raw, CURVES["gmref"], CURVES["wm"], mixture, 1.3 * CURVES["gmref"]]))
    np.testing.assert_allclose(z[:, -2], 0.7 * z[:, -4] + 0.3 * z[:, -3], atol=1e-12)
    assert np.max(np.abs(z[:, -1] - 1.3 * z[:, -4])) > 0.05


def test_gm_fraction_recovers_known_noise_free_mixtures() -> None:
    """Known non-negative mixtures of the four class curves, fractions summing to one (the partial-volume
    model): GMfrac recovered to 1e-8 by the default (sum-to-one) solver."""
    rng = np.random.default_rng(2)
    classes = control_classes(rng)
    weights = rng.dirichlet(np.ones(4), size=3000).T
    weights[:, :500] *= rng.random((4, 500)) < 0.5  # sparse mixtures: zero coefficients
    weights[0, :50] = 0.0
    keep = weights.sum(0) > 0
    weights = weights[:, keep] / weights[:, keep].sum(0)
    error = np.abs(gm_fraction(classes @ weights, classes) - weights[0])
    assert error.max() <= 1e-8


def test_unconstrained_gm_ratio_recovers_arbitrary_positive_combinations_without_noise() -> None:
    """The published unconstrained ratio ``b_GM / sum(b)`` (``sum_to_one=False``) on noise-free positive
    combinations that need not sum to one: recovered to 1e-10 for 99 % of voxels, all within 1e-3."""
    rng = np.random.default_rng(2)
    classes = control_classes(rng)
    weights = rng.dirichlet(np.ones(4), size=3000).T * rng.uniform(0.5, 2.0, 3000)  # (4, V), not summing to 1
    weights[:, :500] *= rng.random((4, 500)) < 0.5
    weights[0, :50] = 0.0
    keep = weights.sum(0) > 0
    weights = weights[:, keep]
    truth = weights[0] / weights.sum(0)
    # The normalised classes are nearly collinear (condition number ~1e3): a few sparse mixtures are
    # recovered only to ~1e-4 (round-off), the rest to 1e-10.
    exact_error = np.abs(gm_fraction(classes @ weights, classes, sum_to_one=False) - truth)
    assert np.mean(exact_error <= 1e-10) >= 0.99
    assert exact_error.max() <= 1e-3


def test_gm_fraction_recovers_noisy_mixtures() -> None:
    """Partial-volume mixtures (fractions summing to one) + noise of SD 2 % of the class spread: the
    default sum-to-one solver gives median |GMfrac error| <= 0.02 and 95th percentile <= 0.05. The
    unconstrained ratio on the same voxels is far worse (median > 0.05): z-scores sum to zero over the
    brain, so a positive combination of the classes is almost null (smallest singular value ~1e-2 of
    ~19) and ``b_GM / sum(b)`` drifts along it with the noise."""
    rng = np.random.default_rng(2)
    classes = control_classes(rng)
    weights = rng.dirichlet(np.ones(4), size=3000).T
    truth = weights[0]
    noisy = classes @ weights + 0.02 * classes.std() * rng.standard_normal((classes.shape[0], 3000))
    error = np.abs(gm_fraction(noisy, classes) - truth)
    unconstrained = np.abs(gm_fraction(noisy, classes, sum_to_one=False) - truth)
    print(f"GMfrac error: median {np.median(error):.4f}, 95th percentile {np.percentile(error, 95):.4f}; "
          f"unconstrained median {np.median(unconstrained):.4f}")
    assert np.median(error) <= 0.02
    assert np.percentile(error, 95) <= 0.05
    assert np.median(unconstrained) > 0.05


def test_background_class_is_the_z_score_of_zero_activity() -> None:
    rng = np.random.default_rng(13)
    tacs = rng.gamma(2.0, 3.0, size=(6, 400))
    background = background_class(tacs)
    np.testing.assert_allclose((normalise_tacs(tacs) - background[:, None]) * tacs.std(1, keepdims=True), tacs,
                               atol=1e-10)
    tacs[0] = 2.0  # a frame without spread: 0, like normalise_tacs
    assert background_class(tacs)[0] == 0.0
    with pytest.raises(InputError, match="at least 2 voxels"):
        background_class(np.ones((3, 1)))


def test_background_class_recovers_gm_fraction_of_csf_diluted_voxels() -> None:
    """Raw voxels = GM/WM/thalamus/blood fractions plus a zero-activity (CSF) fraction of 0-50 %. With the
    background class GMfrac equals the true GM fraction (noise-free, 1e-8); without it, GM voxels diluted
    by CSF look like pure GM (the reason the background class is recommended)."""
    rng = np.random.default_rng(14)
    curves = np.stack([CURVES["gmref"], CURVES["wm"], CURVES["thalamus"], CURVES["blood"]], 1)
    tissue = rng.dirichlet([3.0, 3.0, 1.0, 0.3], size=4000).T
    tissue[:, :1000] = np.array([[1.0], [0.0], [0.0], [0.0]])  # pure GM ...
    csf = rng.uniform(0.0, 0.5, 4000)
    fractions = tissue * (1.0 - csf)  # ... diluted by CSF
    raw = curves @ fractions
    z = normalise_tacs(raw)
    sd = raw.std(1, keepdims=True)  # pure tissues under the same normalisation (frames before arrival: 0)
    classes = np.where(sd > 0, (curves - raw.mean(1, keepdims=True)) / np.where(sd > 0, sd, 1.0), 0.0)
    with_background = gm_fraction(z, classes, background=background_class(raw))
    assert np.abs(with_background - fractions[0]).max() <= 1e-8
    diluted_gm = np.arange(4000) < 1000
    diluted_gm &= csf > 0.2
    without = gm_fraction(z, classes)
    assert np.mean(without[diluted_gm] > 0.9) > 0.5  # accepted as GM although <= 80 % GM
    assert not np.any(with_background[diluted_gm] > 0.9)
    with pytest.raises(InputError, match="background class has 3 frames"):
        gm_fraction(z, classes, background=np.zeros(3))


def test_gm_fraction_is_zero_not_nan_without_any_component() -> None:
    classes = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    voxels = -classes.sum(1, keepdims=True) * np.array([1.0, 2.0])  # anti-correlated with every class
    assert np.array_equal(gm_fraction(voxels, classes, sum_to_one=False), [0.0, 0.0])
    constrained = nnls_coefficients(voxels, classes, sum_to_one=True)  # never all zero: sum is one
    np.testing.assert_allclose(constrained.sum(0), 1.0)
    assert np.all(np.isfinite(gm_fraction(voxels, classes)))


# ----------------------------------------------------------------------------- classes
def test_classes_follow_the_simulated_tissues() -> None:
    """Each class correlates best with its own tissue curve (normalised by the control brains)."""
    rng = np.random.default_rng(3)
    classes = control_classes(rng, n_controls=3)
    assert classes.shape == (TIMING.n_frames, len(SVCA_CLASSES))
    brain = simulate_brain(rng, patient=False)  # an independent control with the same noise
    z = normalise_tacs(brain.raw)
    pure = {"gm": brain.true_reference & (brain.gm_prob > 0.95), "wm": brain.wm_prob > 0.95,
            "highbinding": brain.thalamus}
    for k, name in enumerate(SVCA_CLASSES[:3]):
        expected = z[:, pure[name]].mean(1)
        assert np.corrcoef(classes[:, k], expected)[0, 1] > 0.99, name
    # blood: peaks in the first minute, unlike any tissue
    assert np.argmax(classes[:, 3]) <= 4
    assert classes[:, 3].max() > 3.0


def test_interpolate_classes_is_linear_and_guards_the_range() -> None:
    mid = np.array([1.0, 2.0, 4.0])
    classes = np.array([[0.0, 1.0], [1.0, 3.0], [3.0, 7.0]])
    out = interpolate_classes(classes, mid, [1.5, 3.0, 4.0])
    np.testing.assert_allclose(out, [[0.5, 2.0], [2.0, 5.0], [3.0, 7.0]])
    with pytest.raises(InputError, match="build classes from controls"):
        interpolate_classes(classes, mid, [1.0, 20.0])
    with pytest.raises(InputError, match="mid-times"):
        interpolate_classes(classes, mid[:2], [1.0])


def test_build_classes_input_errors() -> None:
    rng = np.random.default_rng(4)
    brain = simulate_brain(rng, patient=False)
    control = SvcaControl(normalise_tacs(brain.raw), brain.gm_prob, brain.wm_prob, brain.thalamus, TIMING.end_min)
    with pytest.raises(InputError, match="no healthy control"):
        build_svca_classes([])
    shifted = SvcaControl(control.normalised_tacs, brain.gm_prob, brain.wm_prob, brain.thalamus, TIMING.end_min + 1)
    with pytest.raises(InputError, match="control 2: frame schedule"):
        build_svca_classes([control, shifted])
    short = SvcaControl(control.normalised_tacs[:-1], brain.gm_prob, brain.wm_prob, brain.thalamus,
                        TIMING.end_min[:-1])
    with pytest.raises(InputError, match="control 2: frame schedule"):
        build_svca_classes([control, short])
    with pytest.raises(InputError, match="frame end times"):
        build_svca_classes([(control.normalised_tacs, brain.gm_prob, brain.wm_prob, brain.thalamus, [1.0, 2.0])])
    with pytest.raises(InputError, match="no voxel in the highbinding class"):
        build_svca_classes([(control.normalised_tacs, brain.gm_prob, brain.wm_prob, np.zeros_like(brain.thalamus),
                             TIMING.end_min)])
    with pytest.raises(InputError, match="interpolate the classes"):
        gm_fraction(control.normalised_tacs[:-1], build_svca_classes([control]))


# ----------------------------------------------------------------------------- reference
def _reference_in(seed: int, cov: float, patient: bool, binding_fraction: float,
                  background: bool = True) -> tuple[int, float, float]:
    """(selected voxels, purity, max relative TAC error after 2 min) of one simulated subject; GMfrac with
    the sum-to-one solver and, with ``background``, the zero-activity class (the recommended use)."""
    rng = np.random.default_rng(seed)
    classes = control_classes(rng, cov=cov)
    subject = simulate_brain(rng, patient=patient, cov=cov, binding_fraction=binding_fraction)
    fraction = gm_fraction(normalise_tacs(subject.raw), classes,
                           background=background_class(subject.raw) if background else None)
    mask, tac = svca_reference(subject.raw, fraction, subject.gm_prob)
    late = TIMING.start_min >= 2.0
    error = np.abs(tac[late] / CURVES["gmref"][late] - 1.0)
    purity = float(subject.true_reference[mask].mean())
    print(f"SVCA cov {cov}, binding cortex {binding_fraction}, background {background}: {mask.sum()} voxels, purity {purity:.3f}, "
          f"max TAC error after 2 min {error.max():.4f}")
    return int(mask.sum()), purity, float(error.max())


@pytest.mark.parametrize("background", [True, False])
def test_svca_reference_purity_in_a_noisy_patient(background: bool) -> None:
    """Acceptance (part 1): >= 90 % of the selected voxels are true reference voxels (>= 90 % non-binding
    GM), in a patient with 20 % of cortex binding (BPND 0.3) and 10 % voxel noise."""
    n_voxels, purity, _ = _reference_in(seed=5, cov=0.10, patient=True, binding_fraction=0.2, background=background)
    assert n_voxels >= 20
    assert purity >= 0.90


def test_svca_reference_tac_without_noise() -> None:
    """Noise-free subject of the controls' composition: the reference TAC (mean of voxels that are 90-100 %
    reference GM, the rest WM) is within 3 % of the true reference TAC at every frame after 2 min."""
    n_voxels, purity, error = _reference_in(seed=6, cov=0.0, patient=False, binding_fraction=0.0)
    assert n_voxels >= 100
    assert purity == 1.0
    assert error <= 0.03


@pytest.mark.parametrize("background", [True, False])
def test_svca_reference_tac_within_3_percent_in_a_noisy_patient(background: bool) -> None:
    """Acceptance (part 2): TAC within 3 % after 2 min, same noisy patient as the purity test."""
    _, _, error = _reference_in(seed=5, cov=0.10, patient=True, binding_fraction=0.2, background=background)
    assert error <= 0.03


def test_svca_reference_needs_enough_voxels() -> None:
    raw = np.ones((3, 20))
    with pytest.raises(InputError, match="only 0 voxels"):
        svca_reference(raw, np.zeros(20), np.ones(20))
    with pytest.raises(InputError, match="20 voxel TACs but 19"):
        svca_reference(raw, np.zeros(19), np.ones(20))


def _purity_with_gm_class(gm_class_from_reference_region: bool, seed: int = 8) -> tuple[int, float]:
    """Controls and subject whose cortex mostly binds (70 % of GM voxels, BPND 0.3), as TSPO in healthy cortex;
    the remaining GM is the non-binding reference tissue, outlined by a region mask (the atlas cerebellum)."""
    rng = np.random.default_rng(seed)
    controls = []
    for _ in range(3):
        brain = simulate_brain(rng, patient=True, binding_fraction=0.7)
        region = brain.true_reference  # where the pipeline's cerebellar GM region is
        gm_prob = np.where(region, brain.gm_prob, 0.0) if gm_class_from_reference_region else brain.gm_prob
        controls.append(SvcaControl(normalise_tacs(brain.raw), gm_prob, brain.wm_prob, brain.thalamus,
                                    TIMING.end_min))
    classes = build_svca_classes(controls)
    subject = simulate_brain(rng, patient=True, binding_fraction=0.7)
    fraction = gm_fraction(normalise_tacs(subject.raw), classes, background=background_class(subject.raw))
    mask = (fraction > 0.9) & (subject.gm_prob > 0.9)  # svca_reference's selection, without its minimum count
    return int(mask.sum()), float(subject.true_reference[mask].mean()) if mask.any() else 0.0


def test_gm_class_from_the_non_binding_region_keeps_the_reference_pure() -> None:
    """The pipeline's choice (GM class from the reference region's GM, tspo_bids.interfaces.svca): with binding
    cortex in the controls, the published all-GM class selects binding cortex; the reference-region GM class
    does not."""
    n_all_gm, purity_all_gm = _purity_with_gm_class(False)
    n_region, purity_region = _purity_with_gm_class(True)
    print(f"all-GM class: {n_all_gm} voxels, purity {purity_all_gm:.3f}; reference-region GM class: {n_region} "
          f"voxels, purity {purity_region:.3f}")
    assert n_region >= 100 and purity_region >= 0.90
    # the all-GM class (a binding/non-binding blend) finds no usable reference: too few voxels or impure ones
    assert n_all_gm < 10 or purity_all_gm < 0.60
