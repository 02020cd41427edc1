"""`AbstractReport`: what `check_optimality` and `check_derivatives` return.

A report is an `eqx.Module` of arrays, so it can be returned from `jit` and `vmap`
(every field then gains the batch axes). It is truthy when every check passed, so
`assert report, report.why` works; truthiness and `why` need concrete values.
"""

import abc

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Bool


class AbstractReport(eqx.Module):
    """**Fields:** `passed`, a bool array (scalar, or batched under `vmap`): every
    check passed. Subclasses add their figures and say how to print one member."""

    passed: Bool[Array, "*batch"]

    @abc.abstractmethod
    def lines(self, index: tuple) -> list[str]:
        """The report of batch member `index` (`()` unbatched), one line per check."""

    def __bool__(self) -> bool:
        if isinstance(self.passed, jax.core.Tracer):
            raise TypeError(
                f"a {type(self).__name__} is truthy only outside `jit`/`vmap` (its values are "
                "traced here); return it, or use `report.passed`, a bool array."
            )
        return bool(np.all(np.asarray(self.passed)))

    @property
    def why(self) -> str:
        """Every check with its figure and tolerance; for a batch, the failing members."""
        passed = np.asarray(self.passed)
        if passed.ndim == 0:
            return "\n".join(self.lines(()))
        failing = [tuple(int(i) for i in idx) for idx in np.argwhere(~passed)]
        if not failing:
            return f"all {passed.size} members passed"
        out = [f"{len(failing)} of {passed.size} members failed"]
        for idx in failing[:3]:
            out += [f"member {idx}:"] + ["  " + line for line in self.lines(idx)]
        if len(failing) > 3:
            out.append(f"... and {len(failing) - 3} more")
        return "\n".join(out)


def item(array, index: tuple):
    """One member's value of a (possibly batched) field, as a NumPy value."""
    return np.asarray(array)[index]


def verdict(ok) -> str:
    return "ok" if bool(ok) else "FAIL"
