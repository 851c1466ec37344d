"""tspo_bids.reports"""
