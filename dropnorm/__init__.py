"""dropnorm: a specification and property-based conformance suite for Dropout and BatchNorm.

Layout: spec/ (clauses) -> reference/ (float64 numpy math) -> dropnorm.adapters
(implementations under test) -> tests/ (hypothesis properties) -> reports/.
"""
__version__ = "0.1.0"
