"""Where the test suite's time goes: the per-test records that ``tests/conftest.py``
writes when ``JAXMIN_TEST_PHASES=FILE`` is set, summed by module, with the tests that
spend longest in XLA compilation.

``JAXMIN_TEST_PHASES=/tmp/phases.jsonl make test``, then ``python -m
benchmarks.test_phases /tmp/phases.jsonl``. Each record holds a test's wall time and
the seconds of JAX's tracing, lowering and XLA compilation within it (JAX's
``/jax/core/compile/*`` monitoring events, named as in ``benchmarks.first_calls``).
Wall times of the two xdist workers add up: their sum is about twice the run's wall
time.
"""

import argparse
import collections
import json

from .first_calls import _PHASES

COLUMNS = ("wall", *_PHASES)


def load(path: str) -> list[dict]:
    """The records of `path`, each with `test`, `wall` and the phases of `_PHASES`
    (0 where the test had none)."""
    with open(path) as lines:
        raw = [json.loads(line) for line in lines if line.strip()]
    return [{"test": r["test"], "wall": r["wall"], **{k: r.get(event, 0.0) for k, event in _PHASES.items()}}
            for r in raw]


def by_module(records: list[dict]) -> dict[str, dict]:
    """Seconds per column summed over each module's tests, the longest module first."""
    sums: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in records:
        sums[r["test"].split("::")[0]].update({c: r[c] for c in COLUMNS})
    return dict(sorted(sums.items(), key=lambda kv: -kv[1]["wall"]))


def report(records: list[dict], top: int = 20) -> str:
    """A Markdown summary: totals, per module, and the `top` tests by XLA compilation."""
    total = collections.Counter()
    for r in records:
        total.update({c: r[c] for c in COLUMNS})
    header = "| {} | " + " | ".join(COLUMNS) + " |\n|---|" + "---:|" * len(COLUMNS)
    row = lambda name, c: f"| {name} | " + " | ".join(f"{c[k]:.1f} s" for k in COLUMNS) + " |"  # noqa: E731
    share = ", ".join(f"{k} {total[k] / max(total['wall'], 1e-9):.0%}" for k in _PHASES)
    lines = [f"{len(records)} tests, {total['wall']:.0f} s of test time: {share}.", "",
             header.format("module"), row("all", total)]
    lines += [row(module, sums) for module, sums in by_module(records).items()]
    lines += ["", header.format(f"the {top} tests that compile longest")]
    lines += [row(r["test"], r) for r in sorted(records, key=lambda r: -r["compile"])[:top]]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="the JAXMIN_TEST_PHASES file of a test run")
    parser.add_argument("--top", type=int, default=20, help="tests listed by compile time")
    opts = parser.parse_args(argv)
    print(report(load(opts.file), opts.top))


if __name__ == "__main__":
    main()
