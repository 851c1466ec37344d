"""The one exception type for problems a user can cause (bad dataset, bad options).

The command line prints ``InputError`` as a single line and exits non-zero; every
other exception is a bug in tspo-bids and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """A problem with the user's input: dataset, sidecar, option or file.

    The message must name the file (or option) and the problem, and where possible
    the fix, in one line, e.g. ``"sub-01_pet.json: FrameDuration missing"``.
    """
