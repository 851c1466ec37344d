"""tspo_bids.kinetics"""
