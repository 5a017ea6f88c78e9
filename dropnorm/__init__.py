"""dropnorm: a specification and property-based conformance suite for Dropout and BatchNorm.

Layout: spec/ (clauses) -> dropnorm/reference/ (float64 numpy math) -> dropnorm.adapters
(implementations under test, seen through dropnorm.suite.traced) -> dropnorm/properties/ (the hypothesis
property tests, run by pytest with the dropnorm.suite.plugin) -> dropnorm.report (what `dropnorm audit` writes).
tests/ holds the tests of dropnorm itself (zoo, verdicts, reports, spec meta-tests).
"""
__version__ = "0.1.0"
