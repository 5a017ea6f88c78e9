"""Correct variants: implementations that differ from PyTorch (and from scratch) in
legitimate ways and must pass every clause of the layers they reimplement.

Every public module here exports the five classes (dropnorm.zoo.build.layers) and

    VARIANT = {"layers": ["dropout", "dropout2d" and/or "batchnorm"], "summary": "..."}

tests/test_zoo.py audits each on every clause of those layers. They guard the suite
against over-fitting to one implementation: a test that rejects a correct variant is
too strict (a tolerance that assumes one summation order, a check of one random stream).
"""
