"""The one protocol every benchmark section implements.

A section is a module of ``benchmarks/`` that exposes a module-level ``SECTION``
satisfying :class:`Section`: a ``name`` (what ``--only`` selects), the ``solvers``
it can run (what ``--solvers`` filters), the names of its ``problems`` (what
``--only`` prefixes select), ``run(options)`` which measures and
returns a result object of the section's own type, and ``markdown(result)`` which
renders that result as a Markdown section of ``results.md``.  ``python -m
benchmarks`` builds one :class:`Options` from the command line and loops over the
sections; it never looks inside a result.

Conventions every section follows:

- ``options.solvers`` is ``None`` for "all of this section's solvers", else the
  set the user named; a section runs ``options.pick(self.solvers)`` and nothing
  else (no peer is run behind the user's back).
- ``options.problems`` holds ``--only`` problem prefixes; a section runs the
  problems whose name starts with one of them (``options.selects(name)``), all
  of them when it is empty.  ``__main__`` passes a section only the prefixes that
  match one of its ``problems``, and skips a section that was not named when none
  match.  A section with no selected solver or problem returns a result whose
  ``markdown`` is ``""``.
- ``options.repeats`` / ``options.budget`` override the section's own defaults
  (``options.repeats_or(default, quick_default)``); ``options.quick`` asks for a
  smoke run (fewer / smaller problems, fewer repeats).
- Progress goes to ``options.log`` (stderr), never to stdout.
- Figures are written only when ``options.out`` is set, next to the report
  (``options.out + suffix + ".png"``, e.g. ``results_newton.png``); ``markdown``
  names them.

A section module ends with, e.g.::

    def run(options: Options) -> SQPResult: ...
    def markdown(result: SQPResult) -> str: ...   # "" for an empty result

    SECTION = FunctionSection("sqp", SOLVERS, tuple(BUILDERS), run, markdown)

(or any object with those five attributes) and is listed in
``benchmarks.__main__.SECTIONS``.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Protocol, runtime_checkable


def log(*a) -> None:
    """Progress line on stderr (stdout carries the Markdown report)."""
    print(*a, file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class Options:
    """What the command line asks of every section.

    Attributes:
        solvers: solver names to run (``--solvers``); ``None`` = all of the
            section's solvers.
        problems: ``--only`` problem-name prefixes; empty = all problems.
        quick: smoke run (``--quick``): fewer/smaller problems, fewer repeats.
        repeats: steady-state repeats (``--repeats``); ``None`` = the section's
            default.
        budget: seconds of steady timing per solver and problem before further
            repeats of that solver are dropped (``--budget``); ``None`` = the
            section's default.
        batch_size: members of a vmapped batch (``--batch-size``); ``None`` = the
            section's default.
        out: output prefix of the report (``benchmarks/results``); figures go to
            ``out + suffix + ".png"``; ``None`` = write no figures.
        traceback: print the traceback of a solver error (``--traceback``).
        log: where progress lines go.
    """

    solvers: frozenset[str] | None = None
    problems: tuple[str, ...] = ()
    quick: bool = False
    repeats: int | None = None
    budget: float | None = None
    batch_size: int | None = None
    out: str | None = None
    traceback: bool = False
    log: Callable[..., None] = log

    def pick(self, solvers: tuple[str, ...]) -> tuple[str, ...]:
        """The section's ``solvers`` that the user asked for, in the section's order."""
        return solvers if self.solvers is None else tuple(s for s in solvers if s in self.solvers)

    def selects(self, problem: str) -> bool:
        """Whether ``--only`` selects this problem name (no prefixes = every problem)."""
        return not self.problems or any(problem.startswith(p) for p in self.problems)

    def repeats_or(self, default: int, quick_default: int) -> int:
        """``--repeats`` if given, else the section's default (its quick default under ``--quick``)."""
        if self.repeats is not None:
            return self.repeats
        return quick_default if self.quick else default

    def budget_or(self, default: float) -> float:
        """``--budget`` if given, else the section's default."""
        return default if self.budget is None else self.budget


@runtime_checkable
class Section(Protocol):
    """One benchmark section (see the module docstring for the conventions).

    Attributes:
        name: the section's name, as ``--only`` selects it (``"sqp"``).
        solvers: every solver name the section can run, in report order.
        problems: every problem name the section can run (full run), in report
            order; ``--only`` prefixes are matched against these.
    """

    name: str
    solvers: tuple[str, ...]
    problems: tuple[str, ...]

    def run(self, options: Options) -> Any:
        """Measure the selected solvers on the selected problems; return a result."""
        ...

    def markdown(self, result: Any) -> str:
        """The result as a Markdown section (``## ...``) of ``results.md``; ``""``
        when nothing was run."""
        ...


@dataclasses.dataclass(frozen=True)
class FunctionSection:
    """A :class:`Section` made of a module's ``run`` and ``markdown`` functions."""

    name: str
    solvers: tuple[str, ...]
    problems: tuple[str, ...]
    run: Callable[[Options], Any]
    markdown: Callable[[Any], str]
