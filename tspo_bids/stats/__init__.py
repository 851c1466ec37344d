"""tspo_bids.stats"""
