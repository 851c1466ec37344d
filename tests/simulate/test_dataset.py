"""The written dataset: BIDS validity, sidecars, truth files and their consistency with the images."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tspo_bids.anat.regions import REFERENCE_REGION, TARGET_REGIONS
from tspo_bids.kinetics import FrameTiming
from tspo_bids.simulate import make_dataset
from tspo_bids.simulate.cli import main
from tspo_bids.simulate.geometry import Grid
from tspo_bids.simulate.measure import regional_tacs_in_t1w



KINPAR_COLUMNS = ["region", "BPND_tissue", "R1_tissue", "k2_tissue", "BPND_perfect", "DVR_perfect", "R1_perfect",
                  "k2_perfect", "volume_mm3"]


def _validator() -> str | None:
    for candidate in (shutil.which("bids-validator-deno"), "/work/venv/bin/bids-validator-deno"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _errors(path: Path) -> list[dict]:
    executable = _validator()
    if executable is None:
        pytest.skip("bids-validator-deno executable not installed (pip install bids-validator-deno)")
    result = subprocess.run([executable, str(path), "--format", "json"], capture_output=True, text=True,
                            timeout=300)
    issues = json.loads(result.stdout)["issues"]["issues"]
    return [i for i in issues if i["severity"] == "error"]


def _sessions(root: Path) -> list[Path]:
    return sorted((root / "derivatives" / "phantom-truth").glob("sub-*/ses-*/anat/*_desc-truth_kinpar.tsv"))


def test_raw_dataset_passes_the_bids_validator(coarse_dataset):
    root, _ = coarse_dataset
    errors = _errors(root)
    assert not errors, errors[:5]


def test_truth_derivative_passes_the_bids_validator(coarse_dataset):
    root, _ = coarse_dataset
    errors = _errors(root / "derivatives" / "phantom-truth")
    assert not errors, errors[:5]


def test_pet_sidecars_hold_every_required_bids_field(coarse_dataset):
    from bidsschematools import schema

    rules = schema.load_schema().rules.sidecars.pet
    required = {name for group in ("PETHardware", "PETRadioChemistry", "PETTime", "PETReconstruction")
                for name, level in rules[group]["fields"].items()
                if (level if isinstance(level, str) else level["level"]) == "required"}
    required |= {"ReconMethodParameterUnits", "ReconMethodParameterValues", "ReconFilterSize"}
    root, _ = coarse_dataset
    sidecars = sorted(root.glob("sub-*/ses-*/pet/*_pet.json"))
    assert len(sidecars) == 3
    modes = set()
    for path in sidecars:
        sidecar = json.loads(path.read_text())
        assert required <= set(sidecar), required - set(sidecar)
        assert sidecar["Units"] == "kBq/mL"
        n_volumes = nib.load(str(path).replace(".json", ".nii.gz")).shape[-1]
        assert len(sidecar["FrameTimesStart"]) == len(sidecar["FrameDuration"]) == n_volumes == 22
        modes.add(sidecar["ImageDecayCorrected"])
    assert modes == {True, False}


def test_participants_table(coarse_dataset):
    root, participants = coarse_dataset
    table = pd.read_csv(root / "participants.tsv", sep="\t", na_values="n/a")
    for column in ("participant_id", "group", "age", "sex", "edss", "tspo_genotype", "site", "progressed"):
        assert column in table.columns
    assert list(table["group"]) == ["RRMS", "HC"]
    assert table.loc[table["group"] == "HC", "edss"].isna().all()
    assert json.loads((root / "participants.json").read_text())["group"]["Levels"]
    assert [len(p.sessions) for p in participants] == [2, 1]


def test_truth_tables(coarse_dataset):
    root, _ = coarse_dataset
    kinpars = _sessions(root)
    assert len(kinpars) == 3
    for path in kinpars:
        table = pd.read_csv(path, sep="\t", na_values="n/a").set_index("region")
        assert list(table.reset_index().columns) == KINPAR_COLUMNS
        assert set(TARGET_REGIONS) | {REFERENCE_REGION} <= set(table.index)
        assert table.loc[REFERENCE_REGION, "BPND_tissue"] == 0
        assert np.isnan(table.loc["wholebrain", "BPND_tissue"])
        assert table.loc[list(TARGET_REGIONS), "BPND_perfect"].notna().all()
        np.testing.assert_allclose(table["DVR_perfect"], table["BPND_perfect"] + 1, atol=1e-5)
        # at 5 mm FWHM, cortical GM reads well below its tissue BPND (spill-out to CSF/WM)
        assert table.loc["cortexgm", "BPND_perfect"] < table.loc["cortexgm", "BPND_tissue"]
        prefix = path.name.split("_trc-")[0]
        folder = path.parent
        assert len(list(folder.glob(f"{prefix}_*from-T1w_to-pet*_xfm.json"))) == 1
        assert len(list(folder.glob(f"{prefix}_*desc-truth_dseg.nii.gz"))) == 1
        for region in table.index:
            assert (folder / f"{prefix}_space-T1w_label-{region}_mask.nii.gz").exists()


def test_ms_truth_rows_masks_lesion_table_and_dvr_image(coarse_dataset):
    """MS regions are define_ms_regions on the stored truth; perfect values refit from the perfect TACs;
    the per-lesion table matches the lesion labels; the true DVR image is on the T1w grid."""
    from tspo_bids.anat.ms_regions import define_ms_regions
    from tspo_bids.anat.regions import AtlasGroups
    from tspo_bids.anat.template import atlas_group_mask
    from tspo_bids.pet.models import fit_regions
    from tspo_bids.pet.phenotypes import PHENOTYPES
    from tspo_bids.simulate.dataset import PHENOTYPE_COLUMNS

    root, participants = coarse_dataset
    groups = {f"sub-{p.label}": p.group for p in participants}
    all_kinpars = sorted((root / "derivatives" / "phantom-truth").glob("sub-*/**/*_desc-truth_kinpar.tsv"))
    assert {groups[k.name.split("_")[0]] for k in all_kinpars} == {"HC", "RRMS"}
    for path in all_kinpars:
        folder, prefix = path.parent, path.name.split("_trc-")[0]
        patient = groups[prefix.split("_")[0]] != "HC"
        table = pd.read_csv(path, sep="\t", na_values="n/a").set_index("region")
        ms = ["nawm", "lesion", "perilesion03", "perilesion36"] if patient else ["nawm"]
        assert set(ms) <= set(table.index)
        if not patient:
            assert not {"lesion", "perilesion03", "perilesion36"} & set(table.index)
        assert table.loc["nawm", "BPND_tissue"] == table.loc["wm", "BPND_tissue"]
        assert table.loc[ms, "BPND_perfect"].notna().all()

        def load(name: str) -> np.ndarray:
            return np.asarray(nib.load(folder / f"{prefix}_space-T1w_{name}.nii.gz").get_fdata())

        t1w = nib.load(next(root.glob(f"{prefix.split('_')[0]}/**/anat/{prefix}_T1w.nii.gz")))
        voxel = np.sqrt((t1w.affine[:3, :3] ** 2).sum(axis=0))
        labels = load("atlas-AAL_dseg").astype(int)
        atlas = AtlasGroups(*(atlas_group_mask(labels, g) for g in ("cerebellum", "vermis", "thalamus", "deepgm")))
        lesion_labels = (load("desc-lesions_dseg") if patient else np.zeros(labels.shape)).astype(int)
        # probabilities are stored as multiples of 0.01 (uint8, scl_slope float32(0.01)): round on reading
        wm_prob, gm_prob = (np.round(load(f"label-{t}_probseg") * 100) / 100 for t in ("WM", "GM"))
        expected = define_ms_regions(wm_prob, gm_prob, lesion_labels, voxel, atlas=atlas)
        for region in ms:
            mask = load(f"label-{region}_mask") > 0
            np.testing.assert_array_equal(mask, expected[region], err_msg=region)
            assert np.isclose(table.loc[region, "volume_mm3"], mask.sum() * np.prod(voxel), rtol=1e-5)  # TSV: 6 digits
        # the perfect values are the pipeline's SRTM fit of the perfect TACs
        timing = FrameTiming.from_bids(json.loads(next(root.glob(f"{prefix.split('_')[0]}/**/pet/{prefix}_*_pet.json"))
                                                  .read_text()))
        tacs = pd.read_csv(next(folder.glob(f"{prefix}_*desc-perfect_tacs.tsv")), sep="\t")
        refit = {row["region"]: row["BPND"] for row in fit_regions(
            "SRTM", {k: tacs[k].to_numpy() for k in ms + ["wholebrain", REFERENCE_REGION]}, REFERENCE_REGION,
            timing, weights_region="wholebrain")}
        for region in ms:
            assert np.isclose(refit[region], table.loc[region, "BPND_perfect"], atol=1e-6), region

        dvr_file = folder / f"{path.name.split('_desc-')[0]}_space-T1w_desc-truth_dvr.nii.gz"
        dvr_img = nib.load(dvr_file)
        assert dvr_img.shape == t1w.shape and np.allclose(dvr_img.affine, t1w.affine)
        dvr = dvr_img.get_fdata()
        nawm = load("label-nawm_mask") > 0
        assert np.median(np.abs(dvr[nawm] - 1.0 - table.loc["nawm", "BPND_tissue"])) <= 1e-3
        if not patient:
            assert not list(folder.glob("*_desc-truth_lesions.tsv"))
            continue
        lesions = pd.read_csv(next(folder.glob("*_desc-truth_lesions.tsv")), sep="\t", na_values="n/a")
        assert set(PHENOTYPE_COLUMNS) <= set(lesions.columns)
        present = set(np.unique(lesion_labels)) - {0}
        assert present == set(lesions["index"])
        assert set(lesions["phenotype"]) == set(PHENOTYPES)
        counts = {i: (lesion_labels == i).sum() * np.prod(voxel) for i in present}
        np.testing.assert_allclose(lesions["volume_mm3"], [counts[i] for i in lesions["index"]], rtol=1e-5)
        np.testing.assert_allclose(lesions["core_BPND_tissue"], lesions["BPND_tissue"])
        np.testing.assert_allclose(lesions["core_DVR_perfect"], lesions["DVR_perfect"])
        active = lesions["phenotype"] == "overall-active"
        assert lesions.loc[active, "core_BPND_tissue"].between(0.5, 1.0).all()
        assert lesions.loc[~active, "core_BPND_tissue"].between(0.0, 0.15).all()


def _load_session(root: Path, kinpar: Path):
    prefix = kinpar.name.split("_trc-")[0]
    truth = kinpar.parent
    sub, ses = prefix.split("_")
    raw = root / sub / ses
    pet_file = next((raw / "pet").glob("*_pet.nii.gz"))
    pet = nib.load(pet_file)
    sidecar = json.loads(pet_file.with_name(pet_file.name.replace(".nii.gz", ".json")).read_text())
    t1w = nib.load(raw / "anat" / f"{prefix}_T1w.nii.gz")
    xfm = np.asarray(json.loads(next(truth.glob(f"{prefix}_*from-T1w_to-pet*_xfm.json")).read_text())["matrix"])
    masks = {p.name.split("label-")[1].split("_")[0]: np.asarray(nib.load(p).dataobj) > 0
             for p in truth.glob(f"{prefix}_space-T1w_label-*_mask.nii.gz")}
    perfect = pd.read_csv(next(truth.glob(f"{prefix}_*desc-perfect_tacs.tsv")), sep="\t")
    return pet, sidecar, t1w, xfm, masks, perfect


def test_files_measured_with_the_true_transform_give_the_perfect_tacs(coarse_dataset):
    """Reading the stored PET, correcting decay as its sidecar says, resampling it into T1w space
    with the true transform and averaging in the true masks reproduces the perfect TACs up to noise:
    the file geometry, the transform convention and the decay bookkeeping all agree."""
    root, _ = coarse_dataset
    for kinpar in _sessions(root):
        pet, sidecar, t1w, xfm, masks, perfect = _load_session(root, kinpar)
        timing = FrameTiming.from_bids(sidecar, n_volumes=pet.shape[-1])
        corrected = timing.to_injection_decay_corrected(pet.get_fdata(dtype=np.float32), axis=-1)
        grid = Grid(t1w.shape, t1w.affine)
        measured = regional_tacs_in_t1w(corrected, pet.affine, grid, xfm,
                                        {k: masks[k] for k in ("wholebrain", "wm", "cortexgm")})
        for region, tac in measured.items():
            expected = perfect[region].to_numpy()
            informative = expected > 0.1 * expected.max()
            np.testing.assert_allclose(tac[informative], expected[informative], rtol=0.03, err_msg=region)
        np.testing.assert_allclose(perfect["frame_end"] - perfect["frame_start"], sidecar["FrameDuration"])


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, coarse_options):
    digests = []
    for name, seed in (("a", 8), ("b", 8), ("c", 9)):
        make_dataset(tmp_path / name, 1, "pk11195", seed=seed, sessions=(), groups=("RRMS",), options=coarse_options)
        files = sorted(p for p in (tmp_path / name).rglob("*") if p.is_file() and p.name != "README")
        digests.append({str(p.relative_to(tmp_path / name)): p.read_bytes() for p in files
                        if "dataset_description" not in p.name})
    assert digests[0] == digests[1]
    assert digests[0].keys() == digests[2].keys()
    assert digests[0]["sub-01/pet/sub-01_trc-PK11195_pet.nii.gz"] != digests[2]["sub-01/pet/sub-01_trc-PK11195_pet.nii.gz"]
    truth = "derivatives/phantom-truth/sub-01/anat/sub-01_trc-PK11195_desc-truth_kinpar.tsv"
    assert digests[0][truth] != digests[2][truth]


def test_cli_writes_a_dataset_and_refuses_a_non_empty_directory(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main([str(out), "--n-subjects", "1", "--tracer", "pbr28", "--seed", "2", "--sessions",
                 "--groups", "HC", "--coarse", "--no-flair", "--motion", "3"]) == 0
    sidecar = json.loads(next(out.glob("sub-01/pet/*_pet.json")).read_text())
    assert sidecar["TracerName"] == "PBR28" and sidecar["InjectionStart"] == -29.0
    assert len(sidecar["FrameDuration"]) == 37
    assert not list(out.glob("sub-01/anat/*FLAIR*"))
    framewise = json.loads(next(out.glob("derivatives/phantom-truth/sub-01/anat/*desc-framewise_xfm.json")).read_text())
    assert len(framewise["matrices"]) == 37
    assert not _errors(out)
    assert main([str(out), "--n-subjects", "1", "--coarse"]) == 1
    assert "not empty" in capsys.readouterr().err
