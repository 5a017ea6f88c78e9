"""Build the five classes of a zoo module from scratch's with one step changed.

A defect or variant writes a mixin overriding one method of dropnorm/zoo/scratch.py
and exports

    Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(batchnorm=Mixin)

Layers given no mixin are scratch's own (correct) classes.
"""
from __future__ import annotations

import sys

from dropnorm.zoo import scratch


def _derive(base, mixin, module):
    if mixin is None:
        return base
    return type(base.__name__, (mixin, base), {"__module__": module, "__qualname__": base.__name__,
                                                "__doc__": mixin.__doc__})


def layers(*, dropout=None, dropout2d=None, batchnorm=None):
    """(Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d) with the given mixins."""
    module = sys._getframe(1).f_globals.get("__name__", __name__)
    return (_derive(scratch.Dropout, dropout, module), _derive(scratch.Dropout2d, dropout2d, module),
            *(_derive(cls, batchnorm, module) for cls in (scratch.BatchNorm1d, scratch.BatchNorm2d,
                                                          scratch.BatchNorm3d)))
