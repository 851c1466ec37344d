"""tspo-bids: a BIDS App for TSPO PET studies of multiple sclerosis."""

__version__ = "0.1.0"
