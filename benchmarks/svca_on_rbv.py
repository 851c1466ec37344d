"""What partial-volume correction would give the SVCA reference on data/test_bids (issue 4, SVCA TAC within 3 %).

The pipeline refuses ``--pvc`` with ``--ref-region svca``; this script measures what SVCA on the RBV-corrected
series would reach before anyone wires it. From a ``--pvc rbv`` participant run (cerebellar reference) it

1. builds the four SVCA class curves from the healthy controls' RBV-corrected PET (GM class: the pipeline's
   cerebellar GM mask, as ``group --build-svca-classes`` does on uncorrected PET),
2. selects every session's SVCA reference voxels on its RBV-corrected PET (GMfrac > 0.9, p_GM > 0.9),
3. prints, per session, their purity (share in the phantom's non-binding tissue: true p_GM > 0.5 in the atlas
   cerebellum) and the TAC error after 2 min against the true cerebellar GM TAC, beside two bounds on what any
   selection could do: the oracle (the RBV series averaged in true cerebellar GM with p_GM > 0.9) and the
   GTM-corrected cerebellar GM TAC itself.

Usage::

    tspo-bids data/test_bids OUT_PVC participant -w WORK --pvc rbv --pvc-psf 5
    python benchmarks/svca_on_rbv.py OUT_PVC WORK [BIDS_DIR (default data/test_bids)]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from tspo_bids.anat.template import atlas_group_mask
from tspo_bids.interfaces.svca import frame_bounds_s
from tspo_bids.pet.svca import (
    SvcaControl,
    background_class,
    build_svca_classes,
    gm_fraction,
    normalise_tacs,
    svca_reference,
)

REPO = Path(__file__).resolve().parents[1]
TAC_FROM_S = 120.0  # the acceptance compares frames starting at or after 2 min


def _one(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"{root}: expected one {pattern}, found {len(found)}")
    return found[0]


def load_session(out: Path, work: Path, bids: Path, subject: str, session: str) -> dict:
    """Brain-masked RBV voxel TACs ``(n_frames, n_voxels)``, masks, truth and sidecar of one session."""
    prefix = f"sub-{subject}_ses-{session}"
    anat = out / f"sub-{subject}" / f"ses-{session}" / "anat"
    node = _one(work / "tspo_bids_wf", f"sub_{subject}_ses_{session}_*_wf") / "pvc_wf" / "partial_volume_correct"
    brain = np.asarray(nib.load(anat / f"{prefix}_desc-brain_mask.nii.gz").dataobj) > 0
    rbv = np.asarray(nib.load(node / "pet_rbv.nii.gz").dataobj, np.float32)
    raw = np.nan_to_num(rbv[brain].T.astype(float))

    def volume(pattern: str, root: Path = anat) -> np.ndarray:
        return np.asarray(nib.load(_one(root, pattern)).dataobj)[brain]

    truth_dir = bids / "derivatives" / "phantom-truth" / f"sub-{subject}" / f"ses-{session}" / "anat"
    true_gm = volume("*_space-T1w_label-GM_probseg.nii.gz", truth_dir)
    true_cerebellum = atlas_group_mask(volume("*_space-T1w_atlas-AAL_dseg.nii.gz", truth_dir), "cerebellum")
    return {
        "raw": raw,
        "gm": volume(f"{prefix}_label-GM_probseg.nii.gz").astype(float),
        "wm": volume(f"{prefix}_label-WM_probseg.nii.gz").astype(float),
        "cerebellumgm": volume(f"{prefix}_label-cerebellumgm_mask.nii.gz") > 0,
        "thalamus": volume(f"{prefix}_label-thalamus_mask.nii.gz") > 0,
        "reference_tissue": (true_gm > 0.5) & true_cerebellum,
        "oracle": (true_gm > 0.9) & true_cerebellum,
        "true_tac": pd.read_csv(_one(truth_dir, "*_desc-tissue_tacs.tsv"), sep="\t")["cerebellumgm"].to_numpy(float),
        "gtm_tac": pd.read_csv(_one(out / f"sub-{subject}" / f"ses-{session}" / "pet",
                                    f"{prefix}_*pvc-GTM_seg-tspo_desc-preproc_tacs.tsv"), sep="\t")[
            "cerebellumgm"].to_numpy(float),
        "sidecar": json.loads(_one(bids / f"sub-{subject}" / f"ses-{session}" / "pet", "*_pet.json").read_text()),
    }


def _errors(tac: np.ndarray, truth: np.ndarray, late: np.ndarray) -> str:
    error = tac[late] / truth[late] - 1.0
    return f"{np.abs(error).max():6.3f} {error.mean():+7.3f}"


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out, work = Path(sys.argv[1]), Path(sys.argv[2])
    bids = Path(sys.argv[3]) if len(sys.argv) > 3 else REPO / "data" / "test_bids"
    participants = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str)
    groups = dict(zip(participants["participant_id"], participants["group"]))
    sessions = sorted((p.parent.name.removeprefix("sub-"), p.name.removeprefix("ses-"))
                      for p in out.glob("sub-*/ses-*") if p.is_dir())
    data = {key: load_session(out, work, bids, *key) for key in sessions}
    controls = []
    for (subject, _), session in data.items():
        if groups.get(f"sub-{subject}") == "HC":
            _, end = frame_bounds_s(session["sidecar"])
            controls.append(SvcaControl(normalised_tacs=normalise_tacs(session["raw"]),
                                        gm_prob=np.where(session["cerebellumgm"], session["gm"], 0.0),
                                        wm_prob=session["wm"], thalamus_mask=session["thalamus"],
                                        frame_end_min=end / 60.0))
    if not controls:
        raise SystemExit(f"{bids / 'participants.tsv'}: no HC participant among the sessions of {out}")
    classes = build_svca_classes(controls)
    print(f"classes from {len(controls)} control sessions; TAC errors after {TAC_FROM_S / 60:g} min: max |error|, mean")
    print(f"{'session':22s} {'voxels':>7s} {'purity':>7s} {'SVCA on RBV':>14s} {'oracle on RBV':>14s} {'GTM cerebGM':>14s}")
    for (subject, session_name), session in data.items():
        start, _ = frame_bounds_s(session["sidecar"])
        late = start >= TAC_FROM_S
        raw = session["raw"]
        fraction = gm_fraction(normalise_tacs(raw), classes, background=background_class(raw))
        selected, _ = svca_reference(raw, fraction, session["gm"], gm_fraction_threshold=0.9, gm_prob_threshold=0.9)
        truth = session["true_tac"]
        control = " (HC: its own curves are in the classes)" if groups.get(f"sub-{subject}") == "HC" else ""
        print(f"sub-{subject}_ses-{session_name:12s} {int(selected.sum()):7d} "
              f"{session['reference_tissue'][selected].mean():7.3f} "
              f"{_errors(raw[:, selected].mean(axis=1), truth, late)} "
              f"{_errors(raw[:, session['oracle']].mean(axis=1), truth, late)} "
              f"{_errors(session['gtm_tac'], truth, late)}{control}")


if __name__ == "__main__":
    main()
