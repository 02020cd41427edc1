"""The ```python blocks of README.md, what they say they print, and a runner for one block.

Standard library only: `python tests/readme_blocks.py --run` is the fresh subprocess that
executes a block (spec as JSON on stdin), so it must import nothing heavy by itself.
The conventions are described in `tests/test_readme.py`.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import io
import json
import linecache
import re
import symtable
import sys
import tokenize
import traceback

PYTHON_TAGS = {"python", "py", "python3"}
OUTPUT_TAGS = {"", "text", "output"}  # a block of these right after a python block = its stdout

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
_HEADING = re.compile(r"^##(?!#)\s+(.*?)\s*#*\s*$")


# --------------------------------------------------------------------------- parsing


@dataclasses.dataclass
class Expectation:
    """`print(...)` at block lines `lineno..end_lineno` should print `text` (`...` = anything)."""

    lineno: int
    end_lineno: int
    text: str
    source_line: str


@dataclasses.dataclass
class Block:
    section: str  # the `##` heading it is under ("intro" before the first)
    slug: str
    index: int  # 1-based among the python blocks of its section
    line: int  # README line of the block's first code line
    source: str
    expected_stdout: str | None = None  # a ```text block right after it

    @property
    def id(self) -> str:
        return f"{self.slug}-{self.index}"

    @property
    def first_line(self) -> str:
        return next((ln.strip() for ln in self.source.splitlines() if ln.strip()), "")

    @property
    def expectations(self) -> list[Expectation]:
        return print_expectations(self.source)


def slugify(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "section"


def parse_readme(text: str) -> list[Block]:
    """Every ```python block, in order, with its section and a following ```text block."""
    lines = text.splitlines()
    fenced = []  # (lang, section, first code line number, body, line after the closing fence)
    section, i = "intro", 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m:
            fence, lang, start = m.group(1), m.group(2).lower(), i + 1
            j = start
            while j < len(lines) and not lines[j].strip().startswith(fence):
                j += 1
            fenced.append((lang, section, start + 1, "\n".join(lines[start:j]) + "\n", start, j + 1))
            i = j + 1
            continue
        h = _HEADING.match(lines[i])
        if h:
            section = h.group(1)
        i += 1

    blocks, counts = [], {}
    for k, (lang, sec, line, body, _, end) in enumerate(fenced):
        if lang not in PYTHON_TAGS:
            continue
        counts[sec] = counts.get(sec, 0) + 1
        block = Block(sec, slugify(sec), counts[sec], line, body)
        if k + 1 < len(fenced):
            nlang, _, _, nbody, nstart, _ = fenced[k + 1]
            between = lines[end : nstart - 1]
            if nlang in OUTPUT_TAGS and all(not ln.strip() for ln in between):
                block.expected_stdout = nbody
        blocks.append(block)
    return blocks


_PREFIX = re.compile(r"^(?:->|=>|prints?:|output:|out:)\s*", re.IGNORECASE)
_GLOSS = re.compile(r"\s+=\s+(?=[A-Za-z])")  # "-0.16 = the eq multiplier": the gloss is not output


def _comment_text(comment: str) -> str:
    text = _PREFIX.sub("", comment.lstrip("#").strip())
    q = re.fullmatch(r"""(["'])(.*)\1""", text)
    if q:
        return q.group(2)  # quoted: literal text, `...` the only wildcard
    return _GLOSS.split(text, maxsplit=1)[0].strip()


def print_expectations(source: str) -> list[Expectation]:
    """The output stated for each `print(...)` of a block.

    A comment at the end of the print call (`print(x)  # [1. 2.]`, `# "Converged: ..."`,
    `# -> True`, `# prints: ...`) states its output; so do comment-only lines directly
    below it (no blank line between), one printed line each.
    """
    src_lines = source.splitlines()
    try:
        tree = ast.parse(source)
        toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError):
        return []  # running the block reports it
    comments = {t.start[0]: t.string for t in toks if t.type == tokenize.COMMENT}
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"):
            continue
        first, last = node.lineno, node.end_lineno
        trailing = [comments[n] for n in range(first, last + 1) if n in comments]
        if trailing:
            text = _comment_text(trailing[-1])
        else:
            below, n = [], last + 1
            while n <= len(src_lines) and src_lines[n - 1].strip().startswith("#"):
                below.append(_comment_text(src_lines[n - 1].strip()))
                n += 1
            text = "\n".join(below)
        if text.strip():
            out.append(Expectation(first, last, text, src_lines[first - 1].strip()))
    return sorted(out, key=lambda e: e.lineno)


def defined_names(source: str) -> set[str]:
    """Names a block binds at module level (assignments, defs, imports, loop targets)."""
    top = symtable.symtable(source, "<block>", "exec")
    return {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}


def free_names(source: str) -> set[str]:
    """Global names a block reads (at top level or inside its functions) but never binds."""
    top = symtable.symtable(source, "<block>", "exec")
    used = set()

    def visit(table):
        for sym in table.get_symbols():
            if sym.is_referenced() and (table is top or sym.is_global()):
                used.add(sym.get_name())
        for child in table.get_children():
            visit(child)

    visit(top)
    return used - defined_names(source) - set(dir(builtins))


def import_lines(source: str) -> list[str]:
    """The top-level `import` / `from ... import` statements of a block."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        ast.get_source_segment(source, n)
        for n in tree.body
        if isinstance(n, (ast.Import, ast.ImportFrom)) and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")
    ]


def run_plan(block: Block, blocks: list[Block]) -> tuple[list[tuple[str, str]], set[str]]:
    """What runs before `block` in its subprocess, and the names still undefined.

    1. the imports of every earlier python block of the README (a reader has run them);
    2. if the block still reads names it does not define, every earlier python block of
       its own `##` section, in full (their output is not shown).
    """
    earlier = blocks[: blocks.index(block)]
    imports = list(dict.fromkeys(s for b in earlier for s in import_lines(b.source)))
    prelude = [("<README imports of earlier blocks>", "\n".join(imports) + "\n")] if imports else []
    try:
        missing = free_names(block.source) - defined_names("\n".join(imports))
    except SyntaxError:
        return prelude, set()  # the subprocess reports it
    if missing:
        for b in earlier:
            if b.section == block.section:
                prelude.append((filename(b), b.source))
                try:
                    missing -= defined_names(b.source)
                except SyntaxError:
                    pass
    return prelude, missing


def filename(block: Block) -> str:
    return f"<README.md line {block.line}: {block.id}>"


# --------------------------------------------------------------------------- matching

_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"(?P<wild>\.\.\.|…)|(?P<num>{_NUMBER})|(?P<word>\w+)|(?P<punct>\S)")
_NUM_PARTS = re.compile(r"[-+]?\d*(?:\.(\d*))?(?:[eE]([-+]?\d+))?")


def tokenize_text(text: str, wildcards: bool) -> list[tuple[str, str]]:
    """(kind, text) tokens; whitespace only separates tokens. `...` is a wildcard if asked."""
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "wild" and not wildcards:
            out.extend(("punct", c) for c in m.group())
        else:
            out.append((kind, m.group()))
    return out


def numbers_match(expected: str, printed: str) -> bool:
    """An integer as written must be exact; a decimal may differ by one unit in its last
    written digit (`0.0864` stands for 0.08641...), and always by 1e-6 relative."""
    x, y = float(expected), float(printed)
    if x == y:
        return True
    decimals, exponent = _NUM_PARTS.fullmatch(expected).groups()
    if decimals is None and exponent is None:
        return False  # an integer: counts, steps
    unit = 10.0 ** (int(exponent or 0) - len(decimals)) if decimals else 0.0
    return abs(x - y) <= max(unit, 1e-6 * abs(x))


def matches(expected: str, printed: str) -> bool:
    """Whether `printed` is what `expected` states: tokens equal (numbers within the
    precision written), whitespace normalised, `...` in `expected` matches any text."""
    exp, got = tokenize_text(expected, True), tokenize_text(printed, False)
    n, m = len(exp), len(got)
    # ok[i][j]: exp[i:] matches got[j:]
    ok = [[False] * (m + 1) for _ in range(n + 1)]
    ok[n][m] = True
    for i in range(n - 1, -1, -1):
        kind, text = exp[i]
        for j in range(m, -1, -1):
            if kind == "wild":
                ok[i][j] = ok[i + 1][j] or (j < m and ok[i][j + 1])
            elif j < m and got[j][0] == kind:
                same = numbers_match(text, got[j][1]) if kind == "num" else text == got[j][1]
                ok[i][j] = same and ok[i + 1][j + 1]
    return ok[0][0]


# --------------------------------------------------------------------------- runner


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


def _run_from_stdin() -> int:
    """Subprocess side: exec the prelude quietly, then the block, recording its prints."""
    spec = json.load(sys.stdin)
    target = spec["filename"]
    real_stdout, real_print = sys.stdout, builtins.print
    own, per_line = io.StringIO(), {}
    phase = {"block": False}

    def recording_print(*args, **kwargs):
        file = kwargs.pop("file", None)
        if file is not None and file is not sys.stdout:
            return real_print(*args, file=file, **kwargs)
        kwargs.pop("flush", None)
        buf = io.StringIO()
        real_print(*args, file=buf, **kwargs)
        sys.stdout.write(buf.getvalue())
        sys.stdout.flush()
        if phase["block"]:
            f = sys._getframe(1)
            while f is not None and f.f_code.co_filename != target:
                f = f.f_back
            if f is not None:
                per_line.setdefault(f.f_lineno, []).append(buf.getvalue())

    builtins.print = recording_print
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    status = 0
    try:
        sys.stdout = io.StringIO()  # earlier blocks print nothing
        for name, src in spec["prelude"] + [[target, spec["source"]]]:
            if name == target:
                sys.stdout = _Tee(real_stdout, own)
                phase["block"] = True
            linecache.cache[name] = (len(src), None, src.splitlines(True), name)
            exec(compile(src, name, "exec"), namespace)
    except BaseException:
        sys.stdout = real_stdout
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout = real_stdout
        builtins.print = real_print
        real_stdout.flush()
        with open(spec["result"], "w") as fh:
            json.dump({"stdout": own.getvalue(), "per_line": {str(k): "".join(v) for k, v in per_line.items()}}, fh)
    return status


if __name__ == "__main__" and sys.argv[1:] == ["--run"]:
    sys.exit(_run_from_stdin())
