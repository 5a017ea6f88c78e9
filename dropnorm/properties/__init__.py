"""The property suite: one module per clause family, each test citing the clauses it checks.

Shipped in the package so that an installed dropnorm can audit (`dropnorm audit`) and a
framework's CI can run it from its own repository as a pytest plugin run:

    pytest --pyargs dropnorm.properties --impl torch-module:mypkg.layers
"""
