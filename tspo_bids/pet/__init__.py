"""PET image operations: decay correction of series and regional time-activity curves."""
