"""pytest plugin for the zoo's grouped runs: `-p dropnorm.zoo.selection`.

The environment variable DROPNORM_ZOO_SELECT names a JSON file mapping each
--impl spec to the clause ids it is audited on. Every collected test is kept
only for the implementations whose clauses it cites, so one pytest process
audits many implementations, each on its own clauses (conftest's --clause can
only narrow all implementations at once). Kept tests carry the implementation
as a junit property ("impl", spec) next to conftest's ("clause", id).

The run keeps the loaded profile's examples and derandomization but skips
hypothesis' shrink phase: the meta-test asks whether and on which clause an
implementation fails, and the test modules attribute a failure from the
evidence of the failing example (tests/test_*.py check the plain contiguous
case before blaming a layout or a dtype), not from how far it shrinks. Shrinking
a failure costs seconds to minutes per test; the zoo has dozens of them.
Without the variable the plugin does nothing.
"""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import Phase, settings

ENV = "DROPNORM_ZOO_SELECT"

# Tests that cost seconds per implementation (thousands of values, 65537 channels, stateful sequences) and
# cite clauses most BatchNorm defects name: run for every correct variant (a false alarm must show) and for
# the catalogue defects written for them, not for every defect of their clauses (each is rejected on its
# clause by the ordinary tests; test_zoo checks that), which kept the zoo's BatchNorm group within its time
# limit. Test function name -> the defects that need it.
SCOPED = {"test_wide_layers": {"channels_past_grid_limit"},
          "test_long_batches": {"bn_chunked_mean_unweighted"},
          "test_sequences": {"bn_half_second_call", "bn_counter_float"},
          "test_sequences_with_checkpoints": {"bn_plain_dict_counter_ignored"},
          "test_sequences_with_resets": {"bn_reset_ignored_in_eval"}}


def _scoped_out(item, spec: str) -> bool:
    """Whether a SCOPED test is left out for this implementation (a defect it was not written for)."""
    needs = SCOPED.get(getattr(item, "originalname", item.name))
    return needs is not None and ".zoo.defects." in spec and spec.rsplit(".", 1)[-1] not in needs


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if os.environ.get(ENV):
        settings.register_profile("zoo-no-shrink", parent=settings.default,
                                  phases=[Phase.explicit, Phase.reuse, Phase.generate])
        settings.load_profile("zoo-no-shrink")


def pytest_collection_modifyitems(config, items):
    path = os.environ.get(ENV)
    if not path:
        return
    with open(path, encoding="utf-8") as f:
        wanted = {spec: set(ids) for spec, ids in json.load(f).items()}
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        spec = callspec.params.get("impl") if callspec else None
        cited = {cid for mark in item.iter_markers("clause") for cid in mark.args}
        if spec in wanted and cited & wanted[spec] and not _scoped_out(item, spec):
            item.user_properties.append(("impl", spec))
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
