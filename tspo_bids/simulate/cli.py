"""``tspo-bids-simulate``: write a digital-phantom BIDS dataset with known truth."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence

from tspo_bids import __version__
from tspo_bids.errors import InputError
from tspo_bids.simulate.protocols import PROTOCOLS
from tspo_bids.simulate.session import PhantomOptions


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="tspo-bids-simulate",
        description="Write a synthetic BIDS dataset (T1w, FLAIR, dynamic TSPO PET) of healthy controls and MS "
                    "patients, with its ground truth under derivatives/phantom-truth.",
    )
    parser.add_argument("out_dir", metavar="OUT", help="dataset directory to create (must be empty or absent)")
    parser.add_argument("--n-subjects", type=int, required=True, help="number of participants")
    parser.add_argument("--tracer", choices=sorted(PROTOCOLS), default="pk11195", help="simulated tracer")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--sessions", nargs="*", default=["baseline", "followup"], metavar="LABEL",
                        help="session labels (none: no session level); every participant has the first "
                             "(default: baseline followup)")
    parser.add_argument("--n-longitudinal", type=int, default=1,
                        help="participants (patients first) who have every session (default 1)")
    parser.add_argument("--groups", nargs="+", default=["HC", "RRMS", "HC", "SPMS"], metavar="GROUP",
                        help="groups assigned in turn (default: HC RRMS HC SPMS)")
    parser.add_argument("--psf-fwhm", type=float, default=5.0, help="PET PSF FWHM in mm (default 5)")
    parser.add_argument("--pet-voxel", type=float, nargs="+", default=[2.5, 3.0, 3.5, 4.0], metavar="MM",
                        help="PET voxel sizes (mm) to choose from per session")
    parser.add_argument("--t1w-voxel", type=float, nargs="+", default=[1.3, 1.4, 1.5], metavar="MM",
                        help="T1w voxel sizes (mm) to choose from per session")
    parser.add_argument("--voxel-cov", type=float, nargs=2, default=[0.15, 0.25], metavar=("LOW", "HIGH"),
                        help="range of the late-frame voxel COV of PET noise (0 0: noise-free)")
    parser.add_argument("--motion", type=float, default=0.0, metavar="MM",
                        help="inter-frame PET head motion: drift reaching MM mm by the end of the scan (default 0)")
    parser.add_argument("--no-flair", action="store_true", help="do not simulate FLAIR")
    parser.add_argument("--coarse", action="store_true",
                        help="fast low-resolution phantom (2 mm template, 2.5 mm T1w, 4 mm PET) for tests")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    parser.add_argument("--version", action="version", version=f"tspo-bids-simulate {__version__}")
    return parser


def options_from_args(args: argparse.Namespace) -> PhantomOptions:
    """Phantom options from parsed arguments."""
    if args.coarse:
        return PhantomOptions(template_resolution_mm=2, t1w_voxel_mm=(2.5,), flair_voxel_mm=((2.5, 2.5, 3.0),),
                              pet_voxel_mm=(4.0,), psf_fwhm_mm=args.psf_fwhm, voxel_cov=tuple(args.voxel_cov),
                              with_flair=not args.no_flair, motion_mm=args.motion)
    return PhantomOptions(t1w_voxel_mm=tuple(args.t1w_voxel), pet_voxel_mm=tuple(args.pet_voxel),
                          psf_fwhm_mm=args.psf_fwhm, voxel_cov=tuple(args.voxel_cov), with_flair=not args.no_flair,
                          motion_mm=args.motion)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    from tspo_bids.simulate.dataset import make_dataset

    command = "tspo-bids-simulate " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    started = time.time()
    try:
        participants = make_dataset(args.out_dir, args.n_subjects, args.tracer, args.seed,
                                    sessions=tuple(args.sessions), n_longitudinal=args.n_longitudinal,
                                    groups=tuple(args.groups), options=options_from_args(args), command=command)
    except InputError as error:
        print(f"tspo-bids-simulate: error: {error}", file=sys.stderr)
        return 1
    n_sessions = sum(max(1, len(p.sessions)) for p in participants)
    print(f"wrote {len(participants)} participants ({n_sessions} sessions) to {args.out_dir} "
          f"in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
