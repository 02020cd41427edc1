"""Where the collectives of a compiled XLA program are: `collectives(text)` parses
`jax.jit(f).lower(...).compile().as_text()`."""

import dataclasses
import re

import numpy as np

COLLECTIVES = ("all-reduce", "all-gather", "collective-permute", "all-to-all", "reduce-scatter")
_HEADER = re.compile(r"^(?:ENTRY )?%(\S+) .*\{$")
_OP = re.compile(r"^\s*(?:ROOT )?%\S+ = (.+?) ([a-z][a-z0-9-]*)\(")
_CALLS = re.compile(r"\b(condition|body|to_apply|calls|branch_computations|true_computation|"
                    r"false_computation)=\{?([^,}\s]+(?:, %[^,}\s]+)*)\}?")


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
    ops: dict[str, list[tuple[str, str]]] = {}  # computation -> [(op, shape)]
    parent: dict[str, tuple[str, str]] = {}  # computation -> (caller, role)
    entry, current = None, None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = header.group(1)
            ops[current] = []
            if line.startswith("ENTRY"):
                entry = current
            continue
        op = _OP.match(line)
        if op is None or current is None:
            continue
        shape, name = op.group(1), op.group(2)
        base = name.removesuffix("-start").removesuffix("-done")
        if base in COLLECTIVES and not name.endswith("-done"):
            ops[current].append((base, shape))
        for key, callees in _CALLS.findall(line):
            role = f"while-{key}" if name == "while" else name
            for callee in callees.split(", "):
                parent.setdefault(callee.lstrip("%"), (current, role))
    found = []
    for comp, comp_ops in ops.items():
        path, c = [], comp
        while c != entry and c in parent:
            c, role = parent[c]
            path.append(role)
        for op, shape in comp_ops:
            found.append(Collective(op, shape, tuple(reversed(path))))
    return found
