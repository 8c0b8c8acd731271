"""Help text the command line builds when help is shown: every estimator with its settings,
every claim rule with its default (from the registry and `Rules`, so nothing is listed twice
and imports stay lazy)."""

from __future__ import annotations

import typer.core
from rich.markup import escape


class ListingCommand(typer.core.TyperCommand):
    """A command whose help ends with a listing built when the help is shown (from the
    estimator registry or the claim rules), so imports stay lazy and nothing is listed twice."""

    listing: dict = {}  # command name -> function returning the epilog text

    def format_help(self, ctx, formatter):
        self.epilog = self.listing[self.name]()
        return super().format_help(ctx, formatter)


def _param_line(param) -> str:
    default = "from the run's config" if param.default is None else param.default
    return f"    {param.name} (default {default}): {param.help}"


def estimators_help() -> str:
    """Every estimator of the registry with its --set settings and their defaults."""
    from ibrepro.analysis.estimators import DEFAULT, REGISTRY
    from ibrepro.analysis.request import COMMON_PARAMS

    blocks = [f"Estimators (--estimator NAME, default {DEFAULT}) and their settings (--set key=value):"]
    for e in REGISTRY.values():
        blocks.append("\n".join([f"  {e.name}: {e.help}", *(_param_line(p) for p in e.params)]))
    blocks.append("\n".join(["Settings for every estimator:", *(_param_line(p) for p in COMMON_PARAMS)]))
    return escape("\n\n".join(blocks))


def rules_help() -> str:
    """Every claim rule's name and default, with the comment beside it in `Rules` (the
    source of ibrepro.claims.rules is the one place that says what each threshold means)."""
    import dataclasses
    import inspect
    import re

    from ibrepro.claims.rules import Rules

    try:
        comments = dict(re.findall(r"^\s+(\w+): float = [^#\n]+#\s*(.+)$", inspect.getsource(Rules), re.M))
    except OSError:  # installed without sources
        comments = {}
    lines = ["Rules of the claims (--rule name=value):"]
    lines += [f"  {f.name} (default {f.default:g}): {comments.get(f.name, '')}" for f in dataclasses.fields(Rules)]
    return escape("\n".join(lines))


ListingCommand.listing = {"analyze": estimators_help, "claims": rules_help, "report": rules_help}
