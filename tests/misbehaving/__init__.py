"""Implementations that misbehave the way code under audit does: each is audited in
tests/test_harness.py, which checks the audit finishes, blames the right clause and
writes a valid report. Not defects of the math (those are dropnorm/zoo/defects/)."""
