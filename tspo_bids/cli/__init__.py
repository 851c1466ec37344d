"""tspo_bids.cli"""
