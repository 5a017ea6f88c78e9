"""pytest plugin for the zoo's grouped runs: `-p dropnorm.zoo.selection`.

The environment variable DROPNORM_ZOO_SELECT names a JSON file mapping each
--impl spec to the clause ids it is audited on. Every collected test is kept
only for the implementations whose clauses it cites, so one pytest process
audits many implementations, each on its own clauses. Kept tests carry the
implementation as a junit property ("impl", spec) next to conftest's ("clause", id).
Without the variable the plugin does nothing.
"""
from __future__ import annotations

import json
import os

ENV = "DROPNORM_ZOO_SELECT"


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
        if spec in wanted and cited & wanted[spec]:
            item.user_properties.append(("impl", spec))
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
