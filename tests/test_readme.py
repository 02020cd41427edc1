"""Every ```python block of README.md runs and prints what the README says it prints.

Each block runs in a fresh subprocess (cwd = repo root, `JAX_PLATFORMS=cpu`,
`OPENBLAS_NUM_THREADS=1`, x64 off unless the block turns it on). Conventions
(`tests/readme_blocks.py`):

- Only ```python / ```py blocks run; ```bash and others are skipped by their tag.
- Before a block run, quietly, the imports of every earlier python block of the README
  (README blocks rely on `import jax, jax.numpy as jnp; import jaxmin as jm` from the
  first example); and, if the block still reads names it does not define, every earlier
  python block of its `##` section in full. Only the block's own output is checked.
- Stated output: a comment at the end of a `print(...)` call (`# "Converged: ..."`,
  `# [0.84 0.71] True 25`, `# -> True`, `# prints: ...`), or comment-only lines directly
  below it, is what that call prints; a ```text block right after the python block is
  its whole stdout. Matching normalises whitespace, `...` matches any text, numbers match
  to the precision written (`0.0864` is 0.0864 +- 1e-4; integers exactly), quotes around
  a comment are dropped, and in an unquoted comment ` = words...` is a gloss, not output.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

import readme_blocks as rb

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
HELPER = pathlib.Path(rb.__file__).resolve()
BLOCKS = rb.parse_readme(README.read_text(encoding="utf-8"))
TIMEOUT_S = 300


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")
    for var in ("JAX_ENABLE_X64", "JAX_DEFAULT_DTYPE_BITS"):
        env.pop(var, None)
    return env


def _tail(text, n=3000):
    return text if len(text) <= n else "...\n" + text[-n:]


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block(block, tmp_path):
    prelude, missing = rb.run_plan(block, BLOCKS)
    result_path = tmp_path / "result.json"
    spec = {"prelude": prelude, "filename": rb.filename(block), "source": block.source, "result": str(result_path)}
    header = f"README.md line {block.line} ({block.id}): {block.first_line!r}"
    if missing:
        header += f"\n(names defined neither in the block, nor by earlier imports or blocks of its section: {sorted(missing)})"
    try:
        proc = subprocess.run(
            [sys.executable, str(HELPER), "--run"], input=json.dumps(spec), capture_output=True,
            text=True, cwd=ROOT, env=_env(), timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{header}\ntimed out after {TIMEOUT_S} s\n--- stdout ---\n{_tail(e.stdout or '')}")
    if proc.returncode != 0:
        pytest.fail(
            f"{header}\nexit code {proc.returncode}\n--- stdout (tail) ---\n{_tail(proc.stdout)}"
            f"\n--- stderr (tail) ---\n{_tail(proc.stderr)}",
            pytrace=False,
        )
    result = json.loads(result_path.read_text())

    mismatches = []
    for e in block.expectations:
        printed = "".join(v for k, v in sorted(result["per_line"].items(), key=lambda kv: int(kv[0]))
                          if e.lineno <= int(k) <= e.end_lineno)
        if not rb.matches(e.text, printed):
            mismatches.append(
                f"README.md line {block.line + e.lineno - 1}: {e.source_line}\n"
                f"    expected: {e.text!r}\n    printed:  {printed.rstrip(chr(10))!r}"
            )
    if block.expected_stdout is not None and not rb.matches(block.expected_stdout, result["stdout"]):
        mismatches.append(f"whole stdout\n    expected: {block.expected_stdout!r}\n    printed:  {result['stdout']!r}")
    if mismatches:
        pytest.fail(header + "\n" + "\n".join(mismatches), pytrace=False)


def test_readme_states_some_output():
    assert BLOCKS, "no ```python blocks found in README.md"
    assert any(b.expectations or b.expected_stdout is not None for b in BLOCKS), "no block states its output"


def test_matcher_is_not_vacuous():
    m = rb.matches
    assert m('Converged: the gradient norm ... is at most `gtol`.',
             "Converged: the gradient norm 8.3e-07 is at most `gtol`.\n")
    assert not m('Converged: the gradient norm ... is at most `gtol`.', "Max steps reached.\n")
    assert m("[0.8425883  0.70902095 0.5        0.25000004] True 25", "[0.8425883 0.70902095 0.5 0.25000004]  True 25\n")
    assert not m("[0.8425883  0.70902095 0.5        0.25000004] True 25", "[0.8425883 0.70902095 0.5 0.25000004] False 25\n")
    assert not m("[0.8425883  0.70902095 0.5        0.25000004] True 25", "[0.8425883 0.70902095 0.5 0.25000004] True 26\n")
    assert not m("[0.8425883  0.70902095 0.5        0.25000004] True 25", "[0.8425883 0.71902095 0.5 0.25000004] True 25\n")
    assert not m("7 14", "714")
    assert not m("7 14", "7 14 21")  # no silent extra output
    assert m("[-5.7e-17  0.0864  0.0375 -0.0387]", "[-5.73e-17  8.6412e-02  3.7531e-02 -3.8702e-02]")
    assert not m("[-5.7e-17  0.0864  0.0375 -0.0387]", "[-5.73e-17  8.6412e-02  3.7531e-02 3.8702e-02]")
    assert m("Converged ... 904 [1.00 2.00 3.00 4.00 5.00]", "Converged: blah. 904 [0.99999994 2.0000002 3. 4. 5.]")
    assert not m("Converged ... 904 [1.00 2.00 3.00 4.00 5.00]", "Converged: blah. 903 [1. 2. 3. 4. 5.]")

    readme = (
        "## A b\n\n```python\nprint(1 + 1)  # -> 2\nprint('x')\n# x\nprint(3)  # \"... 3\"\n```\n\n"
        "```text\n2\nx\n3\n```\n\n```bash\nexit 1\n```\n"
    )
    (block,) = rb.parse_readme(readme)
    assert block.id == "a-b-1" and block.expected_stdout == "2\nx\n3\n"
    assert [(e.lineno, e.text) for e in block.expectations] == [(1, "2"), (2, "x"), (4, "... 3")]
