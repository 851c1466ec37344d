"""tspo_bids.anat"""
