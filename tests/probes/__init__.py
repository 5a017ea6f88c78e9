"""Probe layers written to test the suite's verdicts (not defects of the catalogue: each combines
what a real user's layer might do, so that the verdict a user would expect can be checked)."""
