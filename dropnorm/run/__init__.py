"""The parent process: the `dropnorm` command and the pytest runs it supervises.

  cli        the command line
  audit      one audit: options, the pytest subprocess, the report directory
  matrix     many audits, one conformance matrix
  selfcheck  the suite's power on its own defect catalogue
"""
