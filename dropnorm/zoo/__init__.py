"""torch.nn-compatible implementations that audit the suite itself.

  scratch     a correct from-scratch implementation (must pass every clause)
  defects/    one module per defect, each violating one named clause
"""
