"""tspo_bids.simulate"""
