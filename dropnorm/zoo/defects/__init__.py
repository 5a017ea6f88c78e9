"""The defect catalogue: one module per defect, each a correct implementation
(dropnorm/zoo/scratch.py) with exactly one plausible error.

Every public module here exports Dropout, Dropout2d, BatchNorm1d, BatchNorm2d,
BatchNorm3d (dropnorm.zoo.build.layers) and a module-level

    DEFECT = {"clause": "<the one clause it violates>", "summary": "...",
              "source": "ledger L-... | https://github.com/... | plausible: ..."}

tests/test_zoo.py checks that the suite rejects each of them on its clause.
Modules whose names start with an underscore are shared helpers, not defects.
"""
