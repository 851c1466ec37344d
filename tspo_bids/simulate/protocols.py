"""Simulated tracers: acquisition protocols and true tissue kinetics (methods.md section 6).

One table, :data:`PROTOCOLS`, holds what differs between the simulated tracers: frame
schedule, injected activity, molar mass, reference-tissue 2TCM parameters per genotype
and the ranges the target-tissue SRTM parameters are drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tspo_bids.errors import InputError
from tspo_bids.kinetics.simulation import SrtmParams, TwoTissueParams


def _schedule(*blocks: tuple[int, float]) -> tuple[float, ...]:
    """Frame durations (s) from (count, duration) blocks."""
    return tuple(float(d) for n, d in blocks for _ in range(n))


@dataclass(frozen=True)
class TracerProtocol:
    """What a simulated tracer and its acquisition look like.

    Attributes
    ----------
    key : str
        Command-line name (``pk11195``).
    tracer_name : str
        BIDS ``TracerName``.
    radionuclide : str
        BIDS ``TracerRadionuclide``.
    frame_duration_s : tuple of float
        Frame durations, s (frames contiguous).
    scan_delay_s : float
        Scan start after injection, s.
    injected_mbq : (float, float)
        Range of the injected activity, MBq.
    molar_activity_gbq_per_umol : (float, float)
        Range of the molar activity at injection, GBq/umol.
    molecular_weight_g_per_mol : float
    reference : dict of str to TwoTissueParams
        Reference-tissue (cerebellar grey matter) 2TCM+vB parameters per TSPO genotype.
    genotype_binding : dict of str to float
        Multiplier of every target BPND per genotype (1 for HAB).
    """

    key: str
    tracer_name: str
    radionuclide: str
    frame_duration_s: tuple[float, ...]
    scan_delay_s: float
    injected_mbq: tuple[float, float]
    molar_activity_gbq_per_umol: tuple[float, float]
    molecular_weight_g_per_mol: float
    reference: dict[str, TwoTissueParams]
    genotype_binding: dict[str, float]


_PK11195_REFERENCE = TwoTissueParams(K1=0.06, k2=0.15, k3=0.04, k4=0.05, vB=0.05)

#: The simulated tracers.
PROTOCOLS: dict[str, TracerProtocol] = {
    "pk11195": TracerProtocol(
        key="pk11195",
        tracer_name="PK11195",
        radionuclide="C11",
        frame_duration_s=_schedule((4, 15), (4, 30), (3, 60), (2, 120), (8, 300), (1, 600)),
        scan_delay_s=0.0,
        injected_mbq=(370.0, 555.0),
        molar_activity_gbq_per_umol=(40.0, 150.0),
        molecular_weight_g_per_mol=352.86,
        # first-generation tracer: binding does not depend on rs6971
        reference={g: _PK11195_REFERENCE for g in ("HAB", "MAB", "LAB")},
        genotype_binding={"HAB": 1.0, "MAB": 1.0, "LAB": 1.0},
    ),
    "pbr28": TracerProtocol(
        key="pbr28",
        tracer_name="PBR28",
        radionuclide="C11",
        frame_duration_s=_schedule((8, 10), (5, 20), (4, 30), (4, 60), (4, 180), (12, 360)),
        scan_delay_s=29.0,
        injected_mbq=(350.0, 450.0),
        molar_activity_gbq_per_umol=(100.0, 300.0),
        molecular_weight_g_per_mol=348.40,
        reference={
            "HAB": TwoTissueParams(K1=0.136, k2=0.159, k3=0.097, k4=0.041, vB=0.05),
            "MAB": TwoTissueParams(K1=0.115, k2=0.170, k3=0.054, k4=0.033, vB=0.03),
            # LAB: essentially no specific binding (k3 kept > 0 for the 2TCM solution)
            "LAB": TwoTissueParams(K1=0.115, k2=0.170, k3=0.005, k4=0.033, vB=0.03),
        },
        genotype_binding={"HAB": 1.0, "MAB": 0.68, "LAB": 0.1},
    ),
}


def get_protocol(tracer: str) -> TracerProtocol:
    """The protocol of a tracer key (case-insensitive)."""
    key = tracer.lower().replace("-", "").replace("[11c]", "")
    if key not in PROTOCOLS:
        raise InputError(f"--tracer {tracer}: unknown simulated tracer; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[key]


def reference_efflux_per_min(reference: TwoTissueParams) -> float:
    """SRTM-consistent reference efflux ``k2' = K1 / VT`` of a 2TCM reference tissue, 1/min.

    ``VT = K1/k2 * (1 + k3/k4)``; targets with ``k2 = R1 * k2'`` have the distribution
    volume ratio ``1 + BPND`` relative to this reference.
    """
    vt = reference.K1 / reference.k2 * (1.0 + reference.k3 / reference.k4)
    return reference.K1 / vt


#: Ranges (uniform) of the true tissue SRTM parameters: (BPND range, R1 range).
TISSUE_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "cortexgm": ((0.15, 0.25), (0.90, 1.00)),
    "wm": ((0.15, 0.25), (0.60, 0.80)),
    "thalamus": ((0.30, 0.40), (0.90, 1.00)),
    "deepgm": ((0.20, 0.30), (0.85, 0.95)),
    "lesion": ((0.00, 0.15), (0.55, 0.70)),
}

#: Multiplier of the white-matter BPND in MS (normal-appearing white matter), range.
NAWM_INCREASE = (1.03, 1.10)

#: Multiplier of the thalamic BPND in MS, range (patients may have higher thalamic binding).
THALAMUS_INCREASE = (1.00, 1.10)

#: Perilesional NAWM: BPND added at the lesion edge, range; it decays linearly to 0 at
#: :data:`PERILESION_EXTENT_MM` (see :mod:`tspo_bids.simulate.phenotypes`).
PERILESION_INCREASE = (0.05, 0.10)

#: Distance from the lesions over which the perilesional increase decays to zero, mm.
PERILESION_EXTENT_MM = 6.0


@dataclass(frozen=True)
class TissueKinetics:
    """True kinetics of one participant/session.

    Attributes
    ----------
    reference : TwoTissueParams
        The reference tissue (cerebellar hemisphere grey matter), BPND 0 by definition.
    tissues : dict of str to SrtmParams
        ``cortexgm``, ``wm`` (NAWM in patients), ``thalamus``, ``deepgm`` and, in
        patients, ``lesion`` (default lesion core) and ``perilesion`` (white matter at a
        lesion's edge: ``wm`` with the perilesional increase added to BPND).
    """

    reference: TwoTissueParams
    tissues: dict[str, SrtmParams]

    @property
    def reference_efflux_per_min(self) -> float:
        """k2' of the reference, 1/min."""
        return reference_efflux_per_min(self.reference)

    def reference_as_srtm(self) -> SrtmParams:
        """The reference tissue in SRTM terms: R1 1, k2 = k2', BPND 0."""
        return SrtmParams(r1=1.0, k2=self.reference_efflux_per_min, bp_nd=0.0)


def draw_kinetics(rng: np.random.Generator, protocol: TracerProtocol, group: str,
                  genotype: str) -> TissueKinetics:
    """Draw a participant's true tissue kinetics.

    Every BPND is drawn from :data:`TISSUE_RANGES`, multiplied by the genotype
    factor of the tracer; patients (any group but ``HC``) get the white-matter BPND
    raised by :data:`NAWM_INCREASE`, the thalamic BPND by :data:`THALAMUS_INCREASE`, a
    lesion tissue and a ``perilesion`` tissue (``wm`` R1, BPND ``wm`` + a draw from
    :data:`PERILESION_INCREASE` times the genotype factor). ``k2 = R1 * k2'`` with ``k2'``
    the reference's efflux, so each target is exactly SRTM against the reference.
    """
    reference = protocol.reference[genotype]
    k2_ref = reference_efflux_per_min(reference)
    binding = protocol.genotype_binding[genotype]
    patient = group.upper() != "HC"
    tissues: dict[str, SrtmParams] = {}
    for name, (bp_range, r1_range) in TISSUE_RANGES.items():
        if name == "lesion" and not patient:
            continue
        bp = rng.uniform(*bp_range) * binding
        if name == "wm" and patient:
            bp *= rng.uniform(*NAWM_INCREASE)
        if name == "thalamus" and patient:
            bp *= rng.uniform(*THALAMUS_INCREASE)
        r1 = rng.uniform(*r1_range)
        tissues[name] = SrtmParams(r1=float(r1), k2=float(r1 * k2_ref), bp_nd=float(bp))
    if patient:
        wm = tissues["wm"]
        increase = rng.uniform(*PERILESION_INCREASE) * binding
        tissues["perilesion"] = SrtmParams(r1=wm.r1, k2=wm.k2, bp_nd=float(wm.bp_nd + increase))
    return TissueKinetics(reference=reference, tissues=tissues)
