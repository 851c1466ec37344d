"""DerivativesDataSink: the one Nipype interface that writes derivatives into OUTPUT_DIR.

In the spirit of niworkflows' sink: the name reuses the ``sub``/``ses``/``trc``/``rec``/``run``
entities of a raw BIDS ``source_file`` and adds the derivative entities given as inputs;
:func:`tspo_bids.bids.derivatives.derivative_path` composes it. Files and their JSON
sidecars are written atomically, so a reader (or a concurrent job) never sees half a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from tspo_bids.bids.derivatives import (
    copy_atomic,
    derivative_path,
    save_nifti_atomic,
    sidecar_path,
    write_json_atomic,
)
from tspo_bids.bids.names import parse_entities

#: Entities taken from the source file's name.
SOURCE_ENTITIES: tuple[str, ...] = ("sub", "ses", "trc", "rec", "run")
#: Optional derivative entities (input name -> entity; ``from_`` because ``from`` is a keyword).
DERIVATIVE_ENTITIES: dict[str, str] = {
    "space": "space", "pvc": "pvc", "seg": "seg", "label": "label", "model": "model", "meas": "meas", "desc": "desc",
    "from_": "from", "to": "to", "mode": "mode",
}
_KNOWN_EXTENSIONS = (".nii.gz", ".nii", ".tsv", ".json", ".h5", ".mat", ".txt", ".svg", ".png", ".html")


class _DerivativesDataSinkInputSpec(BaseInterfaceInputSpec):
    base_directory = traits.Directory(mandatory=True, desc="OUTPUT_DIR (the derivatives dataset root)")
    source_file = File(exists=True, mandatory=True,
                       desc="raw BIDS file whose sub/ses/trc/rec/run entities the name reuses")
    in_file = File(exists=True, mandatory=True, desc="file to write")
    datatype = traits.Enum("anat", "pet", "figures", mandatory=True, desc="BIDS datatype folder")
    suffix = traits.Str(mandatory=True, desc="BIDS suffix, e.g. 'mask', 'tacs', 'kinpar'")
    extension = traits.Str(desc="e.g. '.nii.gz' (default: the in_file's)")
    space = traits.Str(desc="space- entity")
    seg = traits.Str(desc="seg- entity")
    label = traits.Str(desc="label- entity")
    model = traits.Str(desc="model- entity")
    meas = traits.Str(desc="meas- entity")
    desc = traits.Str(desc="desc- entity")
    from_ = traits.Str(desc="from- entity (transforms)")
    to = traits.Str(desc="to- entity (transforms)")
    mode = traits.Str(desc="mode- entity (transforms)")
    pvc = traits.Str(desc="pvc- entity (partial-volume correction method, e.g. GTM, RBV)")
    meta_dict = traits.Dict(traits.Str, traits.Any, desc="JSON sidecar content written beside the file")


class _DerivativesDataSinkOutputSpec(TraitedSpec):
    out_file = File(desc="the written derivative")
    out_meta = File(desc="the written JSON sidecar (when meta_dict was given)")


def _extension(path: str) -> str:
    name = Path(path).name.lower()
    for extension in _KNOWN_EXTENSIONS:
        if name.endswith(extension):
            return extension
    suffixes = Path(path).suffixes
    return suffixes[-1] if suffixes else ""


class DerivativesDataSink(SimpleInterface):
    """Copy ``in_file`` into OUTPUT_DIR under its BIDS derivative name (+ JSON sidecar).

    ``.nii.gz`` outputs of uncompressed inputs are re-saved compressed (and vice versa);
    every other file is copied byte for byte. ``always_run`` is set, so a resumed run
    rewrites outputs that someone deleted from OUTPUT_DIR.
    """

    input_spec = _DerivativesDataSinkInputSpec
    output_spec = _DerivativesDataSinkOutputSpec
    always_run = True

    def _run_interface(self, runtime: Any) -> Any:
        source = parse_entities(self.inputs.source_file)
        entities: dict[str, str] = {key: source[key] for key in SOURCE_ENTITIES if key in source}
        for input_name, entity in DERIVATIVE_ENTITIES.items():
            value = getattr(self.inputs, input_name)
            if isdefined(value) and value:
                entities[entity] = value
        in_extension = _extension(self.inputs.in_file)
        extension = self.inputs.extension if isdefined(self.inputs.extension) else in_extension
        if not extension.startswith("."):
            extension = "." + extension
        relative = derivative_path(entities, self.inputs.suffix, extension, self.inputs.datatype)
        out_file = Path(self.inputs.base_directory) / relative

        if extension in (".nii.gz", ".nii") and in_extension in (".nii.gz", ".nii") and extension != in_extension:
            import nibabel as nib

            save_nifti_atomic(nib.load(self.inputs.in_file), out_file)
        else:
            copy_atomic(Path(self.inputs.in_file), out_file)
        self._results["out_file"] = str(out_file)

        if isdefined(self.inputs.meta_dict) and self.inputs.meta_dict:
            meta_file = sidecar_path(out_file)
            if meta_file == out_file:
                raise ValueError(f"{out_file}: a .json derivative cannot also have a meta_dict sidecar")
            write_json_atomic(dict(self.inputs.meta_dict), meta_file)
            self._results["out_meta"] = str(meta_file)
        return runtime


class _K2PrimeMetaInputSpec(BaseInterfaceInputSpec):
    meta = traits.Dict(traits.Str, traits.Any, mandatory=True, desc="sidecar content known when the graph is built")
    k2prime = traits.Float(mandatory=True, desc="data-derived k2' of this run (1/min)")


class _K2PrimeMetaOutputSpec(TraitedSpec):
    meta = traits.Dict(traits.Str, traits.Any, desc="the sidecar content with K2Prime")


class K2PrimeMeta(SimpleInterface):
    """Add the run's data-derived k2' (known only after the voxel fits) to the parametric maps' sidecar."""

    input_spec = _K2PrimeMetaInputSpec
    output_spec = _K2PrimeMetaOutputSpec

    def _run_interface(self, runtime):
        import math

        value = float(self.inputs.k2prime)
        self._results["meta"] = {
            **self.inputs.meta,
            "K2Prime": {"Value": value if math.isfinite(value) else None, "Units": "1/min",
                        "Description": "data-derived k2' fixed in the SRTM2 and Logan maps: median k2/R1 of the "
                                       "well-fitted SRTM voxels (Wu & Carson 2002)"},
        }
        return runtime
