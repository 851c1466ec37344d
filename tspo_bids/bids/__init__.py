"""tspo_bids.bids"""
