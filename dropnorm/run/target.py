"""The implementation under test, loaded once in the parent process to describe it in the report."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from dropnorm.errors import UsageError
from dropnorm.report import environment
from dropnorm.run.options import Options


@dataclass
class Target:
    """The implementation under test, as the report describes it."""

    spec: str
    name: str
    version: str
    target: str
    sha256: str | None
    description: str
    convention: str = "torch"  # the documented convention it is checked against (spec/conventions.toml)
    provided: list = field(default_factory=list)   # the layer kinds it has
    cost_factor: float = 1.0                        # how much slower than eager torch its tests run
    # a torch-module file's kinds whose class IS torch.nn's (by identity): judged under torch's record
    torch_own_kinds: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def load_target(opts: Options) -> Target:
    """Load the implementation and construct each class it provides with torch.nn's keywords."""
    from dropnorm.adapters import ImplSpecError, NotProvided, load, normalize
    try:
        spec = normalize(opts.impl)
    except ImplSpecError as e:
        raise UsageError(str(e)) from None
    try:
        impl = load(spec, device=opts.device)
    except NotProvided as e:  # an optional framework that is not installed
        raise UsageError(f"cannot load {opts.impl!r}: {e}") from None
    except FileNotFoundError as e:
        raise UsageError(f"cannot load {opts.impl!r}: {e}") from None
    except SyntaxError as e:
        raise UsageError(f"cannot load {opts.impl!r}: syntax error in {e.filename} line {e.lineno}: {e.msg}") from None
    except ImportError as e:
        hint = "check the module name, or pass a path to a .py file" if isinstance(e, ModuleNotFoundError) \
            else "fix the import in the module"
        raise UsageError(f"cannot load {opts.impl!r}: {_one_line(e)} ({hint})") from None
    except Exception as e:  # importing runs the user's code, which may raise anything
        raise UsageError(f"cannot load {opts.impl!r}: importing it raised {_one_line(e)}") from None
    from dropnorm.spec.kinds import FACTORY
    constructors = {"Dropout": lambda: impl.dropout(p=0.5), "Dropout2d": lambda: impl.dropout2d(p=0.5),
                    **{f"BatchNorm{d}d": (lambda d=d: impl.batchnorm(d, 3)) for d in (1, 2, 3)},
                    # the rest of the family (issue 15): only where the adapter says it has the kind
                    **{k: (lambda k=k: getattr(impl, FACTORY[k])(p=0.5)) for k in
                       ("Dropout1d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout") if impl.provides(k)}}
    provided = []
    for kind, make in constructors.items():
        try:
            make()
            provided.append(kind)
        except NotProvided:
            continue
        except Exception as e:
            raise UsageError(f"{impl.describe()}: {kind} cannot be constructed with torch.nn's keywords "
                             f"({_one_line(e)}); see README, 'Audit your own layers'") from None
    if not provided:
        raise UsageError(f"{impl.describe()} provides none of {', '.join(constructors)}: nothing to audit")
    target = getattr(impl, "target", spec)
    sha = environment.file_sha256(target) if target.endswith(".py") and os.path.isfile(target) else None
    from dropnorm.spec import conventions
    return Target(spec, impl.name, str(impl.version), target, sha, impl.describe(), conventions.of(impl).name,
                  provided, float(getattr(impl, "cost_factor", 1.0)), list(getattr(impl, "torch_own_kinds", ())))
