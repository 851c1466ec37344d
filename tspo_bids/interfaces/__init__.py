"""tspo_bids.interfaces"""
