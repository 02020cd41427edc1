"""Where the collectives of a compiled XLA program are: `collectives(text)` reads
`jax.jit(f).lower(...).compile().as_text()` (parsed by `benchmarks.hlo`)."""

import dataclasses
import re

import numpy as np

from benchmarks.hlo import parse

COLLECTIVES = ("all-reduce", "all-gather", "collective-permute", "all-to-all", "reduce-scatter")


@dataclasses.dataclass
class Collective:
    op: str  # e.g. "all-reduce"
    shape: str  # e.g. "pred[]", "f64[4096]{0}"
    path: tuple[str, ...]  # roles from the entry down: "while-body", "while-condition", ...

    @property
    def scalar(self) -> bool:
        # a scalar or a tuple of scalars (XLA combines neighbouring all-reduces)
        return all(dims == "" for dims in re.findall(r"[a-z0-9]+\[([^\]]*)\]", self.shape))

    @property
    def size(self) -> int:
        """Elements of the largest array it communicates."""
        sizes = [1]
        for dims in re.findall(r"[a-z0-9]+\[([^\]]*)\]", self.shape):
            sizes.append(int(np.prod([int(d) for d in dims.split(",") if d.strip()])))
        return max(sizes)

    @property
    def in_loop(self) -> bool:
        return any(role.startswith("while") for role in self.path)

    @property
    def in_condition(self) -> bool:
        # directly in a while loop's condition (the "any member still running" test)
        return bool(self.path) and self.path[-1] == "while-condition"


def collectives(text: str) -> list[Collective]:
    """Every collective of the program with its shape and where it sits."""
    program = parse(text)
    parent: dict[str, tuple[str, str]] = {}  # computation -> (caller, role)
    for name, instructions in program.computations.items():
        for ins in instructions:
            for key, callee in ins.callees:
                parent.setdefault(callee, (name, f"while-{key}" if ins.opcode == "while" else ins.opcode))
    found = []
    for comp, instructions in program.computations.items():
        path, c = [], comp
        while c != program.entry and c in parent:
            c, role = parent[c]
            path.append(role)
        for ins in instructions:
            base = ins.opcode.removesuffix("-start").removesuffix("-done")
            if base in COLLECTIVES and not ins.opcode.endswith("-done"):
                found.append(Collective(base, ins.shape, tuple(reversed(path))))
    return found
