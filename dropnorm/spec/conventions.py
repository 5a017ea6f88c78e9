"""Documented conventions per framework (spec/conventions.toml), and the conversions they imply.

An implementation declares the convention its framework documents
(`Implementation.convention`, a `Convention`; default "torch"). The adapter
interface speaks torch's language (momentum = the weight of the new batch,
or None for the cumulative average); `Convention.framework_momentum` turns
that into the framework's own parameter, and the tests compute their
expectations from the framework's own parameter with the reference's
`momentum_of` and `variance` arguments. So the suite checks each framework
against what it documents, never against another framework's choice.

  python -m dropnorm.spec.conventions      list the conventions
"""
from __future__ import annotations

import functools
import math
import sys
import tomllib
from dataclasses import dataclass

from dropnorm.spec.dtypes import round_to
from dropnorm.spec import SPEC_DIR, SpecError

MOMENTUM_OF = ("new", "old")
RUNNING_VAR = ("unbiased", "biased")
DOC_FIELDS = ("channel_axis", "dropout_rate", "mask_broadcast", "rng", "names")


@dataclass(frozen=True)
class Convention:
    name: str
    framework: str
    momentum_of: str
    momentum_default: float | None   # None: the framework has no default (a required argument)
    cumulative_average: bool
    running_var: str
    eps_default: float
    attribute_dtype: str
    counter: bool
    no_running_stats: bool
    rank_specific: bool
    channel_axis: str
    dropout_rate: str
    mask_broadcast: str
    rng: str
    names: str
    sources: tuple[str, ...]
    zero_debias: bool = False   # the running statistics are zero-debiased EMAs (Haiku): see new_batch_weight

    def framework_momentum(self, momentum: float) -> float:
        """The framework's own momentum parameter for a torch-style momentum (new-batch weight),
        as the layer stores it (rounded to attribute_dtype)."""
        value = momentum if self.momentum_of == "new" else 1.0 - momentum
        return self.attribute(value)

    def attribute(self, value: float) -> float:
        """`value` as the layer stores it: eps and momentum of an ONNX node are 32-bit floats."""
        return float(round_to(value, self.attribute_dtype))

    def new_batch_weight(self, momentum: float, t: int | None = None) -> float:
        """The weight the update gives the batch statistic, for a torch-style momentum.

        Under a zero-debiased convention (zero_debias, Haiku) the running statistic is the EMA
        divided by 1 - d^t (d = 1 - the plain weight, t the counter after the update), which is the
        same as updating the debiased value with the weight (1 - d) / (1 - d^t) (1 at t = 1:
        the first batch replaces the initial value), for `t` given; without `t`, the plain weight
        1 - d (reference.debiased_running_update)."""
        fm = self.framework_momentum(momentum)
        w = fm if self.momentum_of == "new" else 1.0 - fm
        if not self.zero_debias or t is None:
            return w   # the plain weight 1 - d (the decay's complement) when no counter is given
        if int(t) < 1:
            raise ValueError(f"the {self.name} convention's running statistics are zero-debiased: the weight "
                             f"depends on the counter after the update, t >= 1 (got t={t!r})")
        d = 1.0 - w
        return min(1.0, w / -math.expm1(int(t) * math.log1p(-w))) if d > 0 and int(t) > 1 else 1.0   # no cancellation

    def debias_error(self, momentum: float, t: int, stats_dtype: str) -> float:
        """A bound on the relative error that the framework's debias division adds to a running statistic
        after the update that brings the counter to `t` (0 without zero_debias).

        The framework divides by 1 - d^t evaluated in the dtype of its statistics (Haiku:
        `one - jnp.power(decay, counter)`), the documented formula as written. d^t is within max(t, 2)
        ulps of the exact power (t - 1 roundings of repeated multiplication; a library pow is within 2
        ulps), an absolute error <= max(t, 2) u d^t against 1 - d^t, and the subtraction and the division round once
        each: relative error <= max(t, 2) u d^t / (1 - d^t) + 2 u, u the unit roundoff of that dtype. It is
        large only while t is small against 1/(1 - d) (d near 1), where 1 - d^t cancels."""
        if not self.zero_debias:
            return 0.0
        from dropnorm.spec.dtypes import UNIT_ROUNDOFF
        w = self.new_batch_weight(momentum)   # the plain weight 1 - d (zero_debias reads it with t)
        u = UNIT_ROUNDOFF[stats_dtype]
        t = int(t)
        d = 1.0 - w
        if d <= 0:
            return 2 * u
        dt = math.exp(t * math.log(d))
        return max(t, 2) * u * dt / -math.expm1(t * math.log1p(-w)) + 2 * u

    def variance_factor(self, n: int) -> float:
        """What the running variance is fed, as a multiple of the biased batch variance."""
        return n / (n - 1) if self.running_var == "unbiased" else 1.0


@functools.lru_cache(maxsize=1)
def conventions() -> dict[str, Convention]:
    data = tomllib.loads((SPEC_DIR / "conventions.toml").read_text(encoding="utf-8"))
    out = {}
    for name, raw in data["convention"].items():
        raw = dict(raw, sources=tuple(raw.get("sources", ())))
        raw.setdefault("momentum_default", None)   # TOML has no null: an absent default is a required argument
        try:
            c = Convention(name=name, **raw)
        except TypeError as e:
            raise SpecError(f"spec/conventions.toml [{name}]: {e}") from None
        if c.momentum_of not in MOMENTUM_OF or c.running_var not in RUNNING_VAR:
            raise SpecError(f"[{name}]: momentum_of must be one of {MOMENTUM_OF}, running_var one of {RUNNING_VAR}")
        if not isinstance(c.zero_debias, bool):
            raise SpecError(f"[{name}]: zero_debias must be true or false, got {c.zero_debias!r}")
        if not c.sources:
            raise SpecError(f"[{name}]: a convention needs its sources")
        out[name] = c
    return out


def get(name: str) -> Convention:
    try:
        return conventions()[name]
    except KeyError:
        raise SpecError(f"unknown convention {name!r}: one of {sorted(conventions())}") from None


def of(impl) -> Convention:
    """The convention an implementation declares (torch's when it declares none)."""
    c = getattr(impl, "convention", None)
    return c if isinstance(c, Convention) else get(c or "torch")


def markdown_table() -> str:
    """The convention table of docs/conventions.md."""
    cs = list(conventions().values())
    rows = [
        ("momentum weighs", lambda c: f"the {c.momentum_of} value" if c.momentum_of == "old" else "the new batch"),
        ("momentum default", lambda c: "none (a required argument)" if c.momentum_default is None
         else repr(c.momentum_default)),
        ("momentum=None (cumulative average)", lambda c: "yes" if c.cumulative_average else "no"),
        ("running statistics zero-debiased (EMA / (1 - decay^t))", lambda c: "yes" if c.zero_debias else "no"),
        ("running variance", lambda c: "unbiased, var n/(n-1)" if c.running_var == "unbiased" else "biased, var (/n)"),
        ("eps default", lambda c: repr(c.eps_default)),
        ("eps, momentum stored as", lambda c: c.attribute_dtype),
        ("training-call counter", lambda c: "yes" if c.counter else "no"),
        ("option for no running statistics", lambda c: "yes" if c.no_running_stats else "no"),
        ("one class per rank", lambda c: "yes" if c.rank_specific else "no"),
        ("channel axis", lambda c: c.channel_axis),
        ("dropout rate", lambda c: c.dropout_rate),
        ("mask broadcast", lambda c: c.mask_broadcast),
        ("RNG and seeding", lambda c: c.rng),
        ("state names", lambda c: c.names),
    ]
    lines = ["| | " + " | ".join(c.name for c in cs) + " |", "|---|" + "---|" * len(cs)]
    lines += [f"| {label} | " + " | ".join(f(c).replace("|", "/") for c in cs) + " |" for label, f in rows]
    return "\n".join(lines)


def main() -> int:
    for c in conventions().values():
        print(f"{c.name:10} momentum weighs the {c.momentum_of:3} value (default {c.momentum_default}), "
              f"running var {c.running_var}, eps {c.eps_default}  [{c.framework}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
