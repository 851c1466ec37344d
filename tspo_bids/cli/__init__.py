"""The ``tspo-bids`` command line.

``parser.py`` defines the options (BIDS-Apps positional arguments and nipreps-style
options, plus ``--config-file``); ``run.py`` turns them into a frozen
:class:`tspo_bids.config.Settings`, runs discovery and the Nipype workflow (or the group
level) and maps errors to exit codes (``main(argv) -> int``).
"""
