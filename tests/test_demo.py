"""`python -m jaxmin` (what `make demo` runs) solves every showcase problem."""

from jaxmin import _demo


def test_showcase_converges_everywhere(capsys):
    _demo.main()
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.endswith("ms")]
    assert len(rows) == 12 and all("  CONVERGED  " in ln for ln in rows), "\n".join(rows)
