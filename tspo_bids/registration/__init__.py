"""Rigid and deformable registration (antspyx) and world-matrix utilities.

All transforms are exchanged as 4x4 world (RAS+, mm) matrices mapping fixed/reference
points to moving points (see :mod:`tspo_bids.registration.transforms`).
"""
