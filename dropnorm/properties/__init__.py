"""The property suite: one module per clause family, each test citing the clauses it checks.

Shipped in the package so that an installed dropnorm can audit (`dropnorm audit`) and a
framework's CI can run it from its own repository as a pytest plugin run:

    pytest --pyargs dropnorm.properties --impl torch-module:mypkg.layers
"""
import pathlib

DIRECTORY = pathlib.Path(__file__).resolve().parent


def module_files() -> list[str]:
    """The property test modules, as `dropnorm audit` and the zoo's grouped runs pass them to pytest."""
    return sorted(str(p) for p in DIRECTORY.glob("test_*.py"))
