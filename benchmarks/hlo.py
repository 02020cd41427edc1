"""Reading a compiled XLA program's text (`jax.jit(f).lower(...).compile().as_text()`):
its computations, and for each instruction the opcode, the result shape and the
computations it runs. Used by `benchmarks.kernels` (kernels per loop trip) and by
`tests/sharded/hlo.py` (where the collectives are)."""

import re
from typing import NamedTuple

_HEADER = re.compile(r"^(?:ENTRY )?%(\S+) .*\{$")
_OP = re.compile(r"^\s*(?:ROOT )?%(\S+) = (.+?) ([a-z][a-z0-9-]*)\(")
_CALLS = re.compile(r"\b(condition|body|to_apply|calls|branch_computations|true_computation|"
                    r"false_computation)=\{?([^,}\s]+(?:, %[^,}\s]+)*)\}?")


class Instruction(NamedTuple):
    opcode: str  # e.g. "fusion", "while", "all-reduce-start"
    shape: str  # e.g. "f64[4096]{0}", "(f64[], s32[])"
    callees: tuple  # (attribute, computation) it runs: ("body", "region_5.28"), ("calls", ...)
    name: str = ""  # e.g. "select_fusion.3": unique in the program, the name of its thunk


class Program(NamedTuple):
    entry: str
    computations: dict  # name -> [Instruction], in program order


def parse(text: str) -> Program:
    """Every computation of the program text and its instructions."""
    computations: dict[str, list[Instruction]] = {}
    entry, current = None, None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = computations.setdefault(header.group(1), [])
            if line.startswith("ENTRY"):
                entry = header.group(1)
            continue
        op = _OP.match(line)
        if op is None or current is None:
            continue
        callees = tuple((key, callee.lstrip("%")) for key, names in _CALLS.findall(line)
                        for callee in names.split(", "))
        current.append(Instruction(op.group(3), op.group(2), callees, op.group(1)))
    return Program(entry, computations)
