"""spec/CLAUSES.md, rendered from the clause index and the model clauses (python -m dropnorm.spec --markdown).

Apart from the index so that the model clauses (dropnorm/spec/models.py), which read the index, can be
rendered with it without an import cycle.
"""
from __future__ import annotations

import argparse

from dropnorm.spec.index import SPEC_DIR, changes, classes, clauses, spec_version
from dropnorm.spec.kinds import LAYERS
from dropnorm.spec.models import markdown_lines
BASIS_WORDS = {"documented": "the implementation's own documentation or source, under its convention",
               "math": "the mathematics every convention shares",
               "recommendation": "a recommendation of this specification ([DN]); never a MUST"}


def markdown() -> str:
    lines = ["# dropnorm clauses", "",
             f"Specification version {spec_version()}. Rendered from spec/clauses.toml by "
             "`python -m dropnorm.spec --markdown`; edit the TOML, not this file.", "",
             "Each clause has a normative basis and its level follows from it: "
             + "; ".join(f"**{b}**: {w}" for b, w in BASIS_WORDS.items()) + ". "
             "Clauses are grouped into conformance classes, each judged on its own in every report.", "",
             "## Conformance classes", "", "| class | what it covers | clauses |", "|---|---|---|"]
    for k in classes().values():
        ids = [c.id for c in clauses().values() if c.conformance_class == k.id]
        lines.append(f"| {k.title} (`{k.id}`) | {k.description} | {', '.join(ids)} |")
    lines.append("")
    for layer in LAYERS:
        lines += [f"## {layer}", "", "| id | level | basis | class | title |", "|---|---|---|---|---|"]
        lines += [f"| {c.id} | {c.level} | {c.basis} | {c.conformance_class} | {c.title}"
                  f"{' (convention)' if c.conventions else ''} |"
                  for c in clauses().values() if c.layer == layer]
        lines.append("")
    for c in clauses().values():
        lines += [f"### {c.id}: {c.title}", "", f"**{c.level}** ({c.basis}; class {c.conformance_class}). {c.statement}",
                  "", f"- Formula: `{c.formula}`", f"- Source: {c.source}", f"- Why: {c.rationale}"]
        if c.level_reason:
            lines.append(f"- Level: {c.level_reason}")
        if c.applies:
            lines.append("- Conditions limited to some layer kinds: " + "; ".join(
                f"`{cond}`: {', '.join(kinds)}" for cond, kinds in c.applies))
        if c.conventions:
            lines.append("- Depends on the convention: " + ", ".join(f"`{k}`" for k in c.conventions)
                         + " (spec/conventions.toml; the tests use the implementation's own)")
        lines.append("")
    lines += markdown_lines()  # the MD-* clauses of `dropnorm audit-model` (issue 27)
    if changes():
        lines += ["## CHANGES", ""]
        for ch in changes():
            lines += [f"### {ch['version']}", ""] + [f"- {item}" for item in ch["items"]] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dropnorm.spec")
    parser.add_argument("--markdown", action="store_true", help="write spec/CLAUSES.md")
    args = parser.parse_args(argv)
    if args.markdown:
        (SPEC_DIR / "CLAUSES.md").write_text(markdown(), encoding="utf-8")
        print(f"wrote {SPEC_DIR / 'CLAUSES.md'}")
        return 0
    for c in clauses().values():
        print(f"{c.id:16} {c.level:6} {c.title}")
    return 0
