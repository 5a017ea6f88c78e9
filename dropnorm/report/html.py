"""report.html: one self-contained page (no network, no files) with filters and figures.

Every string that comes from an implementation or a test goes through jinja2's
autoescaping; only the SVG figures, which dropnorm draws itself, are inserted
as markup. The Content-Security-Policy allows no external resource and only
the page's own script (by its hash), so even a string that escaped escaping
could not run.
"""
from __future__ import annotations

import base64
import hashlib

import jinja2

from dropnorm.report import figures, replay
from dropnorm.report.markdown import (by_layer, classes_of, headline, layers_line, ordered_rows, pass_detail,
                                      short_script, stale_line)
from dropnorm.report.model import STATUSES

# The page's only script: status filters and a search box. It records its own
# errors in #js-errors and marks the body ready, which the browser test reads.
SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    errors.push(String(e.message));
    var box = document.getElementById('js-errors');
    box.hidden = false; box.textContent = errors.join('\\n');
  });
  var boxes = document.querySelectorAll('#filters input[type=checkbox]');
  var query = document.getElementById('q');
  var rows = document.querySelectorAll('#clauses tbody tr');
  function apply() {
    var on = {};
    boxes.forEach(function (b) { on[b.dataset.status] = b.checked; });
    var q = query.value.toLowerCase(), shown = 0;
    rows.forEach(function (r) {
      var visible = on[r.dataset.status] && r.textContent.toLowerCase().indexOf(q) >= 0;
      r.hidden = !visible; if (visible) { shown += 1; }
    });
    document.getElementById('shown').textContent = shown + ' of ' + rows.length + ' clauses shown';
  }
  boxes.forEach(function (b) { b.addEventListener('change', apply); });
  query.addEventListener('input', apply);
  apply();
  document.body.dataset.ready = 'yes';
})();
"""

_env = jinja2.Environment(loader=jinja2.PackageLoader("dropnorm.report", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


def render(report: dict) -> str:
    rows = [dict(e, severity=e.get("severity")) for e in ordered_rows(report)]  # reports before schema 1.1
    s, env = report["summary"], report["environment"]
    verdict_class = ("partial" if not report["complete"] else "ok" if report["conformant"] else "bad")
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    return _env.get_template("report.html.j2").render(
        impl=report["implementation"], prov=report["provenance"], env=env, run=report["run"],
        torch_version=(env["torch"] or {}).get("version", "absent"),
        seed=env["seed"] if env["seed"] is not None else "derandomized",
        verdict=headline(report, esc=str), verdict_class=verdict_class, summary=s, statuses=STATUSES,
        classes=classes_of(report), diagnosis=report.get("diagnosis") or [],
        counts=", ".join(f"{s[k]} {k}" for k in STATUSES if s[k]) + f" of {s['total']} clauses",
        scripts={e["id"]: short_script(e["failure"]) for e in rows if e["failure"]},
        alone={e["id"]: replay.describe(e["failure"].get("standalone")) for e in rows if e["failure"]},
        layers=layers_line(report), stale=stale_line(report), by_layer={e["id"]: by_layer(e) for e in rows},
        rows=rows, details={e["id"]: e["reason"] if e["status"] != "pass" else pass_detail(e) for e in rows},
        failures=[e for e in rows if e["failure"] or e["errors"]],
        outputs=[o for e in rows for o in e["output"]][:50],
        figures=figures.all_figures(report), script=SCRIPT, script_hash=f"sha256-{digest}")
