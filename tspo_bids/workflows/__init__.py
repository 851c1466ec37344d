"""tspo_bids.workflows"""
