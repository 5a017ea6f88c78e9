"""Conformance reports: report.json (dropnorm/report/schema.json), report.md, report.html, reproduction scripts.

  model        test records (dropnorm/suite/recorder.py) -> per-clause statuses and the report dict
  environment  versions, platform and provenance of an audit
  files        atomic writing, loading and validating report.json, and rendering every format
  markdown     report.md: the summary table for a pull request or CI job summary
  html         report.html: one self-contained page with filters and figures
  figures      the figures, as inline SVG (matplotlib)
  compare      what changed between two reports
"""
