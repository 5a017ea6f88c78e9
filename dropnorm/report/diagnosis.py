"""Likely causes: the failures of one run grouped by what probably produced them (issue 25).

diagnose(entries) takes a report's clause entries (dropnorm/report/model.py) and returns causes, most
likely first, each {cause, confidence, explains: ["CLAUSE/condition", ...], evidence, source, mechanism};
a last entry {"cause": "unexplained", ...} lists the failures no cause explains. Pure functions of the
entries: no torch, no test run. Two kinds of knowledge:

  signatures  what a mechanism leaves in the observed values and in which cases fail (source "signature"):
              value signatures (signatures="quantitative"):
              - the running variance off by exactly (n-1)/n (checked where the case's momentum is 1, so
                the update is the batch variance itself; n from the case's shape: 0.9), else the pattern
                "only running-variance conditions fail, the output and running mean hold" (0.6; 0.45 when
                BN-TRAIN-01/02 did not run);
              - a dropout output scaled by 1 (observed/expected = 1-p) or by 1/p instead of 1/(1-p); a keep
                rate mirrored (observed rate = 1 - expected: p taken as the keep probability); NaN at p = 1;
              - value failures only in float16/bfloat16 cases (statistics or draws kept in the input's
                precision; 0.6 from two failures, 0.3 from one drawn case); only in float64 cases with a
                relative error between 1e-9 and 1e-5 (computes in float32);
              pattern signatures (what the suite knows of its clauses and conditions; written with the
              catalogue in view, so benchmarks/diagnosis/run.py also scores the diagnosis without them):
              - only non-contiguous layouts fail (a layout clause, or two failures; one drawn case: 0.3);
                only non-finite inputs involved; exceptions on one input class only (a dtype, a rank, a
                layout); invalid arguments accepted; the counter; the double backward; the result dtype;
                dropout in eval mode; seeded replay; inplace; the input overwritten; masks of successive
                calls agreeing (DO-TRAIN-05); dependent draws (DO-TRAIN-03/04, D2-TRAIN-04); empty inputs;
                the keep-rate clauses. Weaker (x0.6) where other failures are there too.
  catalogue   the defect zoo's fingerprints (source "catalogue"): each defect of dropnorm/zoo/defects names
              one clause, and dropnorm/zoo/expected_conditions.toml the conditions it is caught on. A defect
              whose fingerprint overlaps the run's failing conditions of that clause is proposed with its
              summary; confidence 0.75 x F1(overlap) (x 0.25 when its clause fails on other conditions
              only), shared among the defects matching equally well in proportion to how many catalogue
              defects share each one's mechanism (a prior). A defect whose mechanism needs a case the
              failures are not in (half precision, a non-contiguous layout) is not proposed.

Causes are ordered by confidence, then by how many failures they explain; a catalogue cause of the same
mechanism as a more likely cause that already explains its failures is folded into that cause's evidence.
A not-reached clause whose test stopped after another clause's failure is explained with that failure.
Known defects and deviations are not diagnosed: they are recorded, with their write-ups.

MECHANISMS tags catalogue defects with a mechanism family; signatures carry the same tags, so that
benchmarks/diagnosis/run.py can score a diagnosis (leave-one-out: a defect's own fingerprint excluded) as
correct when its top cause names the defect's mechanism. A defect in no family is its own mechanism.
"""
from __future__ import annotations

import ast
import functools
import math
import pathlib
import re
import tomllib

ZOO = pathlib.Path(__file__).resolve().parents[1] / "zoo"
DIAGNOSED = ("fail", "error", "not-reached")

# mechanism -> (what it is, the catalogue defects that have it)
MECHANISMS = {
    "running-var-bessel": ("running variance updated with a biased batch variance (no, or a wrong, n/(n-1) correction)",
                           ["biased_running_var", "bessel_batch_size"]),
    "dropout-unscaled": ("kept units are not rescaled by 1/(1-p)",
                         ["no_inverted_scaling", "d2_unscaled", "grad_unscaled", "d2_grad_unscaled"]),
    "p-as-keep": ("p is used as the keep probability", ["p_as_keep_probability", "d2_p_as_keep_probability",
                                                        "ad_p_as_keep_probability"]),
    "p1-nan": ("p = 1 divides by 1 - p = 0", ["p1_nan", "d2_p1_nan", "ad_p1_nan"]),
    "argument-validation": ("invalid constructor arguments are accepted",
                            ["p_range_unchecked", "d2_p_unchecked", "ad_p_unchecked", "p_nan_accepted",
                             "d2_p_nan_accepted", "momentum_unchecked", "eps_zero_accepted"]),
    "dropout-eval": ("dropout is not the identity in eval mode",
                     ["ad_ignores_mode", "d2_ignores_mode", "eval_consumes_rng", "eval_scaling"]),
    "bn-eval-training-path": ("eval mode takes the training path", ["eval_batch_stats", "eval_updates_running"]),
    "half-dtype": ("half-precision results or statistics come back in float32",
                   ["half_promoted", "ad_half_promoted", "output_in_float32", "bn_half_second_call"]),
    "input-precision": ("computed in the input's low precision (float16/bfloat16)",
                        ["half_accumulation", "bf16_keep_rate"]),
    "inplace-ignored": ("inplace=True is not honoured", ["inplace_ignored", "ad_inplace_ignored"]),
    "input-mutated": ("the input is overwritten", ["mutates_input", "normalizes_input_in_place"]),
    "dependent-draws": ("the random draws are not independent across elements, samples or channels",
                        ["mask_shared_across_batch", "d2_mask_shared_across_batch", "odd_row_pairs_shared",
                         "d2_offset_channel_pairs", "paired_mask_bits", "offset_pair_shared_draw",
                         "lag2_shared_draw", "do_reuse_past_2p20", "overdispersed_counts", "fixed_drop_count"]),
    "mask-reuse": ("masks repeat across calls", ["calls_period_two", "mask_reused_across_calls",
                                                 "do_offset_shift_reuse"]),
    "generator": ("masks not drawn from torch's seeded generator", ["numpy_rng", "d1_private_generator",
                                                                    "ad_lazy_generator"]),
    "storage-order": ("non-contiguous inputs read in storage order",
                      ["raw_storage_mask", "raw_storage_stats", "d2_raw_storage", "d2_channels_last_axis"]),
    "no-double-backward": ("the double backward is missing or wrong",
                           ["dropout_once_differentiable", "once_differentiable_backward", "gradgrad_affine_false"]),
    "backward-formula": ("the backward formula is wrong", ["var_detached_backward", "eval_backward_batch_formula"]),
    "counter": ("num_batches_tracked is wrong",
                ["counter_in_eval", "counter_only_for_cma", "bn_counter_float", "counter_not_saved",
                 "reset_keeps_counter", "sync_convert_drops_counter", "legacy_load_zeroes_counter",
                 "bn_plain_dict_counter_ignored"]),
    "cma-momentum": ("momentum=None (cumulative average) weighs the batches wrongly",
                     ["cma_before_increment", "momentum_none_as_default"]),
    "momentum-convention": ("the running update weighs old and new values wrongly",
                            ["momentum_convention", "moving_average_sign"]),
    "eps": ("eps misplaced, missing or with another default",
            ["eps_outside_sqrt", "eval_without_eps", "fold_without_eps", "default_eps_keras"]),
    "batch-statistics": ("the batch statistics used to normalise are wrong",
                         ["batch_axis_only", "global_mean_unbiased_var", "unbiased_normalization",
                          "bn_chunked_mean_unweighted", "bn_variance_skips_zeros"]),
    "large-offset-cancellation": ("accuracy lost to cancellation at large offsets",
                                  ["one_pass_variance", "one_pass_variance_clamped", "folded_normalization_offset"]),
    "affine": ("gamma and beta applied wrongly", ["affine_order", "weight_times_bias"]),
    "buffers": ("parameters or buffers registered wrongly",
                ["running_stats_not_buffers", "notrack_keeps_buffers", "affine_false_params",
                 "lazy_buffers_not_reset"]),
    "nonfinite": ("non-finite values handled wrongly", ["mask_multiplied", "bn_nonfinite_leaks_channel"]),
    "empty-input": ("an empty input handled wrongly", ["empty_flattened", "empty_batch_nan"]),
    "keep-rate": ("the keep rate is off", ["keep_rate_off", "extreme_p_rounded", "near_half_snapped"]),
    "input-rank": ("the input's rank is misread or not checked", ["d3_nobatch_read_as_batch", "rank_unchecked"]),
    # signature-only mechanisms (no catalogue defect has them)
    "float32-compute": ("computes in float32 whatever the input dtype", []),
    "input-class-exception": ("raises on one class of inputs", []),
}
_MECH_OF = {d: m for m, (_, ds) in MECHANISMS.items() for d in ds}


def mechanism_of(defect: str) -> str:
    """The mechanism tag of a catalogue defect (its own name where it is in no family)."""
    return _MECH_OF.get(defect, defect)


# ----------------------------------------------------------------------------------------- catalogue
@functools.lru_cache(maxsize=1)
def catalogue() -> tuple[dict, ...]:
    """Every zoo defect as {name, clause, conditions, summary, mechanism}, read from the files' DEFECT
    literals (ast: importing them would import torch) and expected_conditions.toml."""
    expected = tomllib.loads((ZOO / "expected_conditions.toml").read_text(encoding="utf-8"))
    out = []
    for path in sorted((ZOO / "defects").glob("*.py")):
        if path.name.startswith("_"):
            continue
        meta = _defect_literal(path)
        if meta is None or "clause" not in meta:
            continue
        out.append({"name": path.stem, "clause": meta["clause"], "summary": meta.get("summary", path.stem),
                    "conditions": frozenset(expected.get(path.stem, ())), "mechanism": mechanism_of(path.stem)})
    return tuple(out)


def _defect_literal(path: pathlib.Path) -> dict | None:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DEFECT" for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def diagnosable(defect: str) -> bool:
    """Whether a defect's mechanism can be named without its own fingerprint: a sibling in the catalogue
    shares it, or a signature names it."""
    mech = mechanism_of(defect)
    return mech in SIGNATURE_MECHANISMS or any(d["mechanism"] == mech and d["name"] != defect for d in catalogue())


# ------------------------------------------------------------------------------------------ failures
_DTYPES = ("bfloat16", "float16", "float32", "float64")
_LAYOUTS = ("channels_last_3d", "channels_last", "contiguous", "strided", "transposed", "non-contiguous")
_SHAPE = re.compile(r"\((\d+(?:, \d+)+),?\)")
_NUM = re.compile(r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|inf|nan)", re.I)


def failure_keys(entry: dict) -> list[str]:
    return [f["key"] for f in failures_of(entry)]


def failures_of(entry: dict) -> list[dict]:
    """The failures one clause entry holds: one per condition (from its first failure and each layer
    kind's reason), an error, or not-reached (with the clauses whose failure stopped its test)."""
    cid, status = entry["id"], entry["status"]
    if status not in DIAGNOSED:
        return []
    base = {"clause": cid, "status": status, "severity": entry.get("severity"), "observed": None, "expected": None}
    if status == "not-reached":
        reason = entry.get("reason") or ""
        m = re.search(r"stopped after a failure of ([A-Z0-9, -]+?)(?::|$)", reason)
        after = [c.strip() for c in m.group(1).split(",")] if m else []
        return [dict(base, key=f"{cid}/not-reached", condition="not-reached", message=reason, after=after,
                     case=parse_case(reason))]
    if status == "error":
        errs = entry.get("errors") or [{"error": entry.get("reason") or ""}]
        text = "\n".join(e["error"] for e in errs)
        return [dict(base, key=f"{cid}/error", condition="error", message=text,
                     cases=[parse_case(e["error"]) for e in errs], case=parse_case(text))]
    out: dict[str, dict] = {}
    f = entry.get("failure")
    if f:
        out[f["condition"]] = dict(base, key=f"{cid}/{f['condition']}", condition=f["condition"],
                                   message=f.get("message") or "", observed=f.get("observed"),
                                   expected=f.get("expected"), severity=f.get("severity") or base["severity"])
    for kind, got in (entry.get("by_layer") or {}).items():
        if got.get("status") != "fail":
            continue
        m = re.match(rf"{re.escape(cid)}/([^:]+): (.*)", got.get("reason") or "", re.S)
        if m and m.group(1) not in out:
            out[m.group(1)] = dict(base, key=f"{cid}/{m.group(1)}", condition=m.group(1), message=m.group(2))
    for item in out.values():
        item["case"] = parse_case(item["message"])
    return list(out.values())


def parse_case(text: str) -> dict:
    """What the failure's message says about its case: dtypes, input shape, layout, mode, momentum, p."""
    text = text or ""
    case: dict = {"dtypes": [d for d in _DTYPES if re.search(rf"\b{d}\b", text)]}
    ctx = text[text.find("["):] if "[" in text else text  # the case description, after the values
    shapes = []
    for m in _SHAPE.finditer(ctx):
        before = ctx[max(0, m.start() - 6):m.start()]
        if "index" not in before:
            shapes.append(tuple(int(v) for v in m.group(1).split(", ")))
    case["shape"] = shapes[0] if shapes else None
    case["layout"] = next((lay for lay in _LAYOUTS if re.search(rf"\b{lay}\b", ctx)), None)
    case["mode"] = "eval" if re.search(r"\beval\b", ctx) else "training" if re.search(r"\btrain", ctx) else None
    m = re.search(r"momentum[= ](None|[-+0-9.e]+)", text)
    case["momentum"] = None if m is None or m.group(1) == "None" else _float(m.group(1))
    m = re.search(r"\bp=([0-9.e-]+)", text)
    case["p"] = _float(m.group(1)) if m else None
    case["nonfinite"] = bool(re.search(r"non-finite|\bnan\b|\binf\b|infinit", text, re.I))
    return case


def _float(s) -> float | None:
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def _first_number(s) -> float | None:
    if s is None:
        return None
    m = _NUM.search(str(s))
    return _float(m.group(0)) if m else None


def _tolerance(expected) -> float | None:
    m = re.search(r"\+- ([0-9.e+-]+)", str(expected or ""))
    return _float(m.group(1)) if m else None


def _ratio(item: dict) -> float | None:
    obs, exp = _first_number(item.get("observed")), _first_number(item.get("expected"))
    if obs is None or exp is None or not math.isfinite(obs) or not math.isfinite(exp) or exp == 0:
        return None
    return obs / exp


def _per_channel(shape) -> int | None:
    """n: values per channel of a BatchNorm input (N, C, ...) or (N, C)."""
    if not shape or len(shape) < 2:
        return None
    return math.prod(shape) // shape[1]


# ---------------------------------------------------------------------------------------- signatures
def _cause(cause, confidence, explains, evidence, source, mechanism):
    return {"cause": cause, "confidence": round(float(confidence), 2), "explains": sorted(set(explains)),
            "evidence": evidence, "source": source, "mechanism": mechanism}


_VAR_CONDITION = re.compile(r"running-var|var-average|running_var")


def _is_var(item) -> bool:
    return bool(_VAR_CONDITION.search(item["condition"])) or (item["message"].split("[", 1)[-1]
                                                              .startswith("running_var"))


def sig_bessel(items, statuses):
    var = [f for f in items if f["status"] == "fail" and f["clause"].startswith("BN-") and _is_var(f)]
    if not var:
        return []
    checked, held = [], []
    for f in var:
        n, r = _per_channel(f["case"]["shape"]), _ratio(f)
        if f["case"]["momentum"] != 1.0 or n is None or n < 2 or r is None:
            continue
        exp, tol = _first_number(f.get("expected")), _tolerance(f.get("expected"))
        slack = max(2 * (tol or 0) / abs(exp) if exp else 0, 1e-6)
        checked.append(f)
        if abs(r - (n - 1) / n) <= slack and abs(r - 1) > slack / 2:
            held.append((f, r, n))
    other = [f for f in items if f["status"] == "fail" and f["clause"].startswith("BN-") and not _is_var(f)
             and re.search(r"running-mean|mean-average|^output$", f["condition"])]
    if held and len(held) == len(checked):
        f, r, n = held[0]
        return [_cause(MECHANISMS["running-var-bessel"][0], 0.9, [x["key"] for x in var],
                       f"{f['key']}: observed/expected {r:.6g} = (n-1)/n for n = {n} values per channel at "
                       f"momentum 1 ({len(held)} of {len(checked)} checkable failure(s) agree)",
                       "signature", "running-var-bessel")]
    if checked or other:
        return []  # the ratio is checkable and is not (n-1)/n, or means/outputs fail too: not this
    passing = [c for c in ("BN-TRAIN-01", "BN-TRAIN-02") if statuses.get(c) == "pass"]
    return [_cause(MECHANISMS["running-var-bessel"][0], 0.6 if passing else 0.45, [x["key"] for x in var],
                   "only running-variance conditions fail" + (f" while {', '.join(passing)} (output, running mean) pass"
                                                              if passing else ""),
                   "signature", "running-var-bessel")]


def sig_dropout_scale(items, statuses):
    out = []
    for f in items:
        if f["status"] != "fail" or f["condition"] not in ("scale", "mask-times-scale", "zeros"):
            continue
        r, p = _ratio(f), f["case"]["p"]
        if r is None or p is None or not 0 < p < 1:
            continue
        if abs(r - (1 - p)) < 1e-3 * max(1, r):
            out.append(("dropout-unscaled", f, f"observed/expected {r:.4g} = 1-p for p = {p:g}: kept units scaled by 1"))
        elif abs(r - (1 - p) / p) < 1e-3 * max(1, r):
            out.append(("p-as-keep", f, f"observed/expected {r:.4g} = (1-p)/p for p = {p:g}: kept units scaled by 1/p"))
    if not out:
        # no p in the message: a ratio equal for every failure still says 'a constant scale'
        return []
    causes = []
    for mech in sorted({m for m, _, _ in out}):
        hits = [(f, why) for m, f, why in out if m == mech]
        causes.append(_cause(MECHANISMS[mech][0], 0.9, [f["key"] for f, _ in hits], f"{hits[0][0]['key']}: {hits[0][1]}",
                             "signature", mech))
    return causes


def sig_keep_rate(items, statuses):
    hits = []
    for f in items:
        if f["status"] != "fail" or not re.search(r"keep-rate|size-sweep", f["condition"]):
            continue
        obs = _first_number(f.get("observed"))
        exp = _first_number(f.get("expected"))
        if obs is None or exp is None or abs(exp - 0.5) < 0.05:
            continue
        if abs(obs - (1 - exp)) < 0.05 and abs(obs - exp) > 0.1:
            hits.append((f, obs, exp))
    if not hits:
        return []
    f, obs, exp = hits[0]
    return [_cause(MECHANISMS["p-as-keep"][0], 0.85, [h[0]["key"] for h in hits],
                   f"{f['key']}: keep rate {obs:.4g} = 1 - {exp:.4g} (the expected rate mirrored)", "signature", "p-as-keep")]


def _value_failures(items):
    return [f for f in items if f["status"] == "fail" and f.get("severity") in ("wrong-value", None)]


def sig_low_precision(items, statuses):
    vals = [f for f in _value_failures(items) if f["case"]["dtypes"]]
    if not vals:
        return []
    half = [f for f in vals if set(f["case"]["dtypes"]) & {"float16", "bfloat16"}
            and not set(f["case"]["dtypes"]) & {"float64"}]
    if len(half) != len(vals):
        return []
    kinds = sorted({d for f in half for d in f["case"]["dtypes"] if d in ("float16", "bfloat16")})
    # one failure on a drawn dtype is weak evidence
    return [_cause(MECHANISMS["input-precision"][0], 0.6 if len(half) >= 2 else 0.3, [f["key"] for f in half],
                   f"every value failure with a dtype in its case is in {'/'.join(kinds)} ({len(half)} of them)",
                   "signature", "input-precision")]


def sig_float32(items, statuses):
    vals = [f for f in _value_failures(items) if f["case"]["dtypes"]]
    if not vals or any(f["case"]["dtypes"] != ["float64"] for f in vals):
        return []
    rel = []
    for f in vals:
        obs, exp = _first_number(f.get("observed")), _first_number(f.get("expected"))
        if obs is not None and exp:
            rel.append(abs(obs - exp) / abs(exp))
    if not rel or not all(1e-9 <= r <= 1e-5 for r in rel):
        return []
    return [_cause(MECHANISMS["float32-compute"][0], 0.75, [f["key"] for f in vals],
                   f"only float64 cases fail, relative errors {min(rel):.2g}..{max(rel):.2g} "
                   f"(float32's unit roundoff is 6e-08)", "signature", "float32-compute")]


_LAYOUT_CLASS = {"channels_last", "channels_last_3d", "strided", "transposed", "non-contiguous"}


def sig_storage_order(items, statuses):
    """A layout clause fails (its tests blame the layout only when the contiguous twin passed), or two or
    more failures all on non-contiguous layouts; one failure on a drawn layout is weak evidence (0.3)."""
    fails = [f for f in items if f["status"] == "fail"]
    laid = [f for f in fails if f["case"]["layout"]]
    if not laid or any(f["case"]["layout"] not in _LAYOUT_CLASS for f in laid):
        return []
    strong = len(laid) >= 2 or any("-LAYOUT-" in f["clause"] for f in laid)
    return [_cause(MECHANISMS["storage-order"][0], 0.55 if strong else 0.3, [f["key"] for f in laid],
                   f"every failure with a layout in its case is non-contiguous "
                   f"({', '.join(sorted({f['case']['layout'] for f in laid}))})", "signature", "storage-order")]


def sig_nonfinite(items, statuses):
    fails = [f for f in items if f["status"] == "fail"]
    hit = [f for f in fails if "NONFINITE" in f["clause"] or re.search(r"non-finite|finite|dropped-is-zero",
                                                                       f["condition"])]
    if not hit or len(hit) != len(fails):
        return []
    return [_cause(MECHANISMS["nonfinite"][0], 0.5, [f["key"] for f in hit],
                   "every failure involves non-finite values", "signature", "nonfinite")]


def sig_exception_class(items, statuses):
    errs = [f for f in items if f["status"] == "error"]
    if not errs:
        return []
    for axis, label in (("dtypes", "dtype"), ("layout", "layout"), ("rank", "rank")):
        vals = []
        for f in errs:
            for case in f.get("cases") or [f["case"]]:
                if axis == "rank":
                    vals.append(len(case["shape"]) if case["shape"] else None)
                elif axis == "dtypes":
                    vals.append(tuple(case["dtypes"]) or None)
                else:
                    vals.append(case[axis])
        if vals and None not in vals and len(set(vals)) == 1:
            v = vals[0]
            v = "/".join(v) if isinstance(v, tuple) else v
            return [_cause(f"{MECHANISMS['input-class-exception'][0]}: {label} {v}", 0.5, [f["key"] for f in errs],
                           f"every error is on {label} {v}", "signature", "input-class-exception")]
    return []


def sig_invalid_accepted(items, statuses):
    hit = [f for f in items if f["status"] == "fail" and f.get("severity") == "invalid-accepted"
           and "-API-" in f["clause"]]
    if not hit:
        return []
    return [_cause(MECHANISMS["argument-validation"][0], 0.6, [f["key"] for f in hit],
                   f"{len(hit)} check(s) got a constructed layer where an error was due", "signature", "argument-validation")]


def sig_p1_nan(items, statuses):
    hit = [f for f in items if f["status"] == "fail" and f["case"]["p"] == 1.0
           and str(f.get("observed") or "").lower().startswith("nan")]
    if not hit:
        return []
    return [_cause(MECHANISMS["p1-nan"][0], 0.85, [f["key"] for f in hit],
                   f"{hit[0]['key']}: NaN at p = 1 where zeros are due (0/0 or inf - inf)", "signature", "p1-nan")]


_CONDITION_PATTERNS = (  # mechanism, condition regex, clause regex, confidence, evidence
    ("counter", r"^(count|counter|legacy-counter|plain-counter|converted-state)$", r"^BN-", 0.55,
     "only num_batches_tracked conditions fail"),
    ("no-double-backward", r"^gradgradcheck$", r"", 0.55, "only the double-backward check fails"),
    ("half-dtype", r"^(dtype|stats-dtype)$", r"", 0.5, "only the result or statistics dtype is wrong"),
    ("dropout-eval", r"^(identity|rng-untouched|deterministic)$", r"^(DO|D2|AD)-EVAL-", 0.5,
     "dropout checks fail only in eval mode"),
    ("generator", r"^(replay|fresh)$", r"-SEED-", 0.5, "the masks do not replay under torch's seed"),
    ("inplace-ignored", r"^input-holds-output$", r"", 0.5, "the input does not hold the result with inplace=True"),
    ("input-mutated", r"^input-unchanged$", r"", 0.5, "the input changed with inplace=False"),
    ("mask-reuse", r"", r"^DO-TRAIN-05$", 0.45, "masks of successive calls agree (DO-TRAIN-05)"),
    ("mask-reuse", r"^call-agreement$", r"^D2-TRAIN-04$", 0.45, "channel masks of successive calls agree"),
    ("dependent-draws", r"", r"^(DO-TRAIN-03|DO-TRAIN-04)$", 0.45,
     "mask elements or samples are dependent (DO-TRAIN-03/04)"),
    ("dependent-draws", r"^(sample|channel)-agreement$", r"^D2-TRAIN-04$", 0.45, "channel draws are dependent"),
    ("empty-input", r"", r"-EMPTY-|^BN-TRAIN-07$", 0.45, "only empty inputs fail"),
    ("keep-rate", r"", r"^(DO-TRAIN-02|D2-TRAIN-03|AD-TRAIN-02)$", 0.35, "the keep rate is off"),
)


def sig_condition_patterns(items, statuses):
    fails = [f for f in items if f["status"] == "fail"]
    out = []
    for mech, cond, clause, conf, why in _CONDITION_PATTERNS:
        hit = [f for f in fails if re.search(cond, f["condition"]) and re.search(clause, f["clause"])]
        if hit:  # weaker where other failures are there too
            out.append(_cause(MECHANISMS[mech][0], conf if len(hit) == len(fails) else 0.6 * conf,
                              [f["key"] for f in hit], why, "signature", mech))
    return out


QUANTITATIVE = (sig_bessel, sig_dropout_scale, sig_keep_rate, sig_p1_nan, sig_low_precision, sig_float32)
PATTERNS = (sig_storage_order, sig_nonfinite, sig_exception_class, sig_invalid_accepted, sig_condition_patterns)
SIGNATURE_MECHANISMS = {"running-var-bessel", "dropout-unscaled", "p-as-keep", "input-precision", "float32-compute",
                        "storage-order", "nonfinite", "input-class-exception", "argument-validation",
                        "counter", "no-double-backward", "half-dtype", "dropout-eval", "p1-nan", "generator",
                        "inplace-ignored", "input-mutated", "mask-reuse", "dependent-draws", "empty-input", "keep-rate"}


# ----------------------------------------------------------------------------------------- catalogue
def catalogue_causes(items, exclude=frozenset()):
    """Causes from the defect zoo's fingerprints (excluding the named defects)."""
    failing: dict[str, set] = {}
    for f in items:
        if f["status"] == "fail":
            failing.setdefault(f["clause"], set()).add(f["condition"])
    defects = [d for d in catalogue() if d["name"] not in exclude]
    family = {}
    for d in defects:
        family[d["mechanism"]] = family.get(d["mechanism"], 0) + 1
    scored = []
    for d in defects:
        run = failing.get(d["clause"])
        if not run or not d["conditions"]:
            continue
        if not _consistent(d["mechanism"], [f for f in items if f["status"] == "fail" and f["clause"] == d["clause"]]):
            continue
        common = run & d["conditions"]
        if common:
            precision, recall = len(common) / len(run), len(common) / len(d["conditions"])
            scored.append((d, common, 2 * precision * recall / (precision + recall)))
        else:  # the clause fails, on other conditions than the defect's: weak evidence (CLAUSE_ONLY)
            scored.append((d, frozenset(run), CLAUSE_ONLY))
    out = []
    for d, common, f1 in scored:
        ties = [(e, c) for e, c, g in scored if e["clause"] == d["clause"] and c == common and abs(g - f1) < 1e-9]
        share = family[d["mechanism"]] / sum(family[e["mechanism"]] for e, _ in ties)
        how = (f"overlap F1 {f1:.2f}" if f1 != CLAUSE_ONLY else "same clause, other conditions")
        out.append(_cause(d["summary"], 0.75 * f1 * share, [f"{d['clause']}/{c}" for c in common],
                          f"zoo defect {d['name']} ({d['clause']}: {', '.join(sorted(d['conditions']))}); "
                          + how + (f", one of {len(ties)} equally matching" if len(ties) > 1 else ""),
                          "catalogue", d["mechanism"]))
    return out


CLAUSE_ONLY = 0.25  # the F1 a defect of the failing clause gets when none of its conditions fail
# mechanisms that can only show in some cases: a catalogue defect of such a mechanism is not proposed for
# failures whose case (parsed from the message) is none of them
_NEEDS = {"input-precision": lambda c: not c["dtypes"] or bool({"float16", "bfloat16"} & set(c["dtypes"])),
          "half-dtype": lambda c: not c["dtypes"] or bool({"float16", "bfloat16"} & set(c["dtypes"])),
          "storage-order": lambda c: c["layout"] is None or c["layout"] in _LAYOUT_CLASS}


def _consistent(mechanism: str, failures: list[dict]) -> bool:
    need = _NEEDS.get(mechanism)
    return need is None or any(need(f["case"]) for f in failures)


# ----------------------------------------------------------------------------------------- diagnosis
def diagnose(entries: list[dict], exclude=frozenset(), signatures: str = "all") -> list[dict]:
    """Likely causes of the entries' failures, most likely first, then {"cause": "unexplained", ...}
    when some failure is explained by none. exclude: catalogue defects left out (leave-one-out);
    signatures: "all", "quantitative" (value signatures only) or "none"."""
    items = [f for e in entries for f in failures_of(e)]
    if not items:
        return []
    statuses = {e["id"]: e["status"] for e in entries}
    sigs = {"all": QUANTITATIVE + PATTERNS, "quantitative": QUANTITATIVE, "none": ()}[signatures]
    causes = [c for sig in sigs for c in sig(items, statuses)] + catalogue_causes(items, exclude)
    causes = [c for c in causes if c["confidence"] > 0]
    # a not-reached clause stopped by a failure goes with that failure's causes
    for f in items:
        if f["condition"] == "not-reached" and f.get("after"):
            for c in causes:
                if any(k.split("/")[0] in f["after"] for k in c["explains"]):
                    c["explains"] = sorted(set(c["explains"]) | {f["key"]})
    causes.sort(key=lambda c: (-c["confidence"], -len(c["explains"]), c["source"] != "signature", c["cause"]))
    causes = _fold_siblings(causes)
    explained = {k for c in causes for k in c["explains"]}
    left = sorted({f["key"] for f in items} - explained)
    if left:
        causes.append({"cause": "unexplained", "confidence": 0.0, "explains": left,
                       "evidence": "no signature or catalogue fingerprint matches these failures",
                       "source": "none", "mechanism": None})
    return causes


def _fold_siblings(causes: list[dict]) -> list[dict]:
    """A catalogue cause of the same mechanism as a more likely cause that already explains its failures is
    evidence for that cause, not another cause: named in its evidence instead."""
    kept: list[dict] = []
    for c in causes:
        host = next((k for k in kept if c["source"] == "catalogue" and k["mechanism"] == c["mechanism"]
                     and set(c["explains"]) <= set(k["explains"])), None)
        if host is None:
            kept.append(c)
            continue
        name = c["evidence"].split(" ", 3)[2] if c["evidence"].startswith("zoo defect ") else c["cause"]
        host["evidence"] += f", {name}" if "; also zoo defect " in host["evidence"] else f"; also zoo defect {name}"
    return kept


def lines(diagnosis: list[dict], limit: int = 3, width: int = 160) -> list[str]:
    """Console/markdown lines: the first `limit` causes (what each explains, its evidence shortened to
    `width`), then the unexplained failures."""
    out = []
    ranked = [c for c in diagnosis if c["cause"] != "unexplained"]
    for i, c in enumerate(ranked[:limit], 1):
        keys = c["explains"]
        shown = ", ".join(keys[:6]) + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "")
        evidence = c["evidence"] if len(c["evidence"]) <= width else c["evidence"][:width - 3] + "..."
        out.append(f"{i}. {c['cause']} (confidence {c['confidence']:.2f}); explains {shown}; evidence: {evidence}")
    if len(ranked) > limit:
        out.append(f"({len(ranked) - limit} less likely cause(s) in report.md/report.json)")
    rest = next((c for c in diagnosis if c["cause"] == "unexplained"), None)
    if rest:
        out.append(f"unexplained: {', '.join(rest['explains'])}")
    return out
