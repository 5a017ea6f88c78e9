"""What the layers must compute, as data and small pure functions: no pytest, no framework.

  index        the clause index (spec/clauses.toml), conformance classes, deviation files
  document     spec/CLAUSES.md rendered from the index and the model clauses (models)
  kinds        the layer kinds and the clause layer of each
  dtypes       the floating-point formats exercised, and rounding to them
  conventions  each framework's documented conventions (spec/conventions.toml)
  tolerances   floating-point tolerances, each derived
  stats        exact statistical tests and the false-alarm budget

`from dropnorm.spec import clauses, Deviation, ...` reads the index.
"""
from dropnorm.spec.index import *  # noqa: F401,F403 - the index is the package's face
from dropnorm.spec.index import ROOT, SPEC_DIR  # noqa: F401 - named for readers of the face
from dropnorm.spec.document import main, markdown  # noqa: F401 - CLAUSES.md (index and model clauses)
