"""The documentation site (`make docs`) builds with `--strict` and its pages are not empty.

The site is built once per test run into a temporary folder (~10 s). The pages are then
read as a person would read them: the headings, the code, the images. A page that renders
empty, a README section that moved or is in no page, a notebook that lost its figures or
is missing from the nav, or a public name missing from the API reference fails here. The
examples in the public docstrings and the code written in docs/ itself run too.
"""

import fcntl
import html.parser
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import jaxmin as jm

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Every public name of these modules has an entry (an anchor `module.Name`) in the API
# reference.
PUBLIC_MODULES = {"jaxmin": jm, "jaxmin.linear": jm.linear, "jaxmin.linesearch": jm.linesearch,
                  "jaxmin.testing": jm.testing}


class _Page(html.parser.HTMLParser):
    """The parts of an HTML page a reader sees: headings, ids, code, images, text."""

    def __init__(self, text):
        super().__init__()
        self.headings, self.ids, self.images, self.code, self.words = [], set(), [], [], []
        self._stack = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        self._stack.append([tag, ""])

    def handle_endtag(self, tag):
        while self._stack:
            open_tag, text = self._stack.pop()
            if open_tag in ("h1", "h2", "h3"):
                self.headings.append((open_tag, text.replace("¶", "").strip()))
            if open_tag in ("code", "pre"):
                self.code.append(text)
            if self._stack:
                self._stack[-1][1] += text
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._stack:
            self._stack[-1][1] += data
        self.words.append(data)

    @property
    def text(self):
        return " ".join("".join(self.words).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # One build per test run: pytest-xdist workers share their base folder's parent,
    # and the first worker to get here builds while the others wait for it.
    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    out, log = root / "docs-site", root / "docs-site.log"
    with open(root / "docs-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not log.exists():
            env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
            proc = subprocess.run(
                [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
            )
            log.write_text(f"{proc.returncode}\n{proc.stderr}", encoding="utf-8")
    returncode, stderr = log.read_text(encoding="utf-8").split("\n", 1)
    if "No module named mkdocs" in stderr:
        pytest.fail("mkdocs is not installed: `pip install -e '.[docs]'` (`make test` does).")
    warnings = [ln for ln in stderr.splitlines() if ln.startswith(("WARNING", "ERROR"))]
    assert returncode == "0" and not warnings, stderr[-4000:]
    return out


def _page(site, path) -> _Page:
    return _Page((site / path / "index.html").read_text(encoding="utf-8"))


def test_home_page_has_the_readme_introduction_and_example(site):
    page = _page(site, "")
    assert ("h1", "jaxmin") in page.headings
    assert {"Example", "Where to go next"} <= {text for _, text in page.headings}
    assert "Deterministic minimization in JAX" in page.text
    assert any("jm.minimize(rosenbrock" in code for code in page.code)


def test_guides_include_their_readme_sections(site):
    expected = {  # page: words of the README section it pastes in
        "guides/tolerances": "as accurate as the dtype allows",
        "guides/differentiating": "implicit function theorem",
        "guides/constraints": "Goldfarb & Idnani",
        "guides/least-squares": "Levenberg",
        "guides/first-order": "optax",
        "guides/scaling": "all-reduce",
        "guides/testing": "check_optimality",
        "benchmarks": "SciPy L-BFGS-B",
    }
    for path, words in expected.items():
        page = _page(site, path)
        assert words in page.text, path
        assert page.code, f"{path} shows no code"
    choosing = _page(site, "guides/choosing-a-solver")
    assert "SciPy → jaxmin" in [text for _, text in choosing.headings]
    assert "res.nit" in choosing.text and "sol.num_steps" in choosing.text


def test_api_reference_documents_every_public_name(site):
    pages = [_page(site, f"api/{name}") for name in
             ("minimize", "solution", "solvers", "linesearch", "linear", "testing", "authors")]
    ids = set().union(*(p.ids for p in pages))
    missing = [f"{mod_name}.{name}" for mod_name, mod in PUBLIC_MODULES.items()
               for name in dir(mod) if not name.startswith("_")
               and not isinstance(getattr(mod, name), type(jm)) and f"{mod_name}.{name}" not in ids]
    missing += [f"jaxmin.testing.{name}" for name in ("strategies",) if f"jaxmin.testing.{name}" not in ids]
    assert not missing, f"public names without an entry in docs/api/: {missing}"
    solvers = _page(site, "api/solvers")
    assert ("h3", "LBFGS") in solvers.headings
    assert "history_size" in solvers.text and "Nocedal" in solvers.text
    # internal hooks stay out of what a user reads
    assert not any("__check_init__" in p.text for p in pages)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_rendered_with_its_figures(site, path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    figures = sum("image/png" in out.get("data", {}) for cell in nb["cells"]
                  for out in cell.get("outputs", []))
    page = _page(site, f"notebooks/{path.stem}")
    title = next(s for c in nb["cells"] if c["cell_type"] == "markdown"
                 for s in ["".join(c["source"])] if s.startswith("# "))
    assert ("h1", title.splitlines()[0][2:].replace("`", "").strip()) in page.headings
    assert sum(src.startswith("data:image/png") for src in page.images) == figures
    assert any("import jaxmin" in code for code in page.code)


def test_benchmark_plots_are_in_the_site(site):
    page = _page(site, "benchmarks")
    assert len(page.images) >= 2
    for src in page.images:
        assert (site / "benchmarks" / src).is_file(), src
    results = (site / "benchmarks" / "results" / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<table>", results) and "jaxmin LBFGS" in results


def _public_objects():
    for mod_name, mod in PUBLIC_MODULES.items():
        for name in sorted(dir(mod)):
            obj = getattr(mod, name)
            if not name.startswith("_") and not isinstance(obj, type(jm)):
                yield f"{mod_name}.{name}", obj


_FENCED_PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)
EXAMPLES = [(name, block) for name, obj in _public_objects()
            for block in _FENCED_PYTHON.findall(inspect.getdoc(obj) or "")]


def test_public_classes_have_examples():
    """Each class a user builds (solvers, line searches, linear solvers, problems) shows
    how in its docstring; results, reports, enums and base classes need not."""
    have = {name for name, _ in EXAMPLES}
    classes = {name for name, obj in _public_objects() if isinstance(obj, type)
               and not name.rsplit(".", 1)[1].startswith(("Abstract", "Status", "Reason"))
               and not name.endswith(("Result", "Report", "Solution"))}
    assert not classes - have, f"public classes without an example: {sorted(classes - have)}"


@pytest.mark.parametrize("name, block", EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_docstring_example_runs(name, block):
    import jax
    import jax.numpy as jnp

    exec(compile(block, f"<docstring of {name}>", "exec"), {"jax": jax, "jnp": jnp, "jm": jm})


@pytest.mark.parametrize("enum", [jm.Status, jm.Reason], ids=lambda e: e.__name__)
def test_every_status_and_reason_is_explained(enum):
    doc = enum.__doc__
    missing = [m.name for m in enum if f"`{m.name}` ({m.value}" not in doc]
    assert not missing, f"{enum.__name__} members not explained in its docstring: {missing}"


DOC_PAGES_WITH_CODE = ["getting-started.md", "guides/tolerances.md"]


@pytest.mark.parametrize("page", DOC_PAGES_WITH_CODE)
def test_code_written_for_the_docs_runs(page):
    """The ```python blocks written in docs/ itself (README sections are tested by
    tests/test_readme.py), in order, in one namespace, as a reader would run them."""
    blocks = _FENCED_PYTHON.findall((ROOT / "docs" / page).read_text(encoding="utf-8"))
    assert blocks
    namespace = {}
    for block in blocks:
        exec(compile(block, f"<docs/{page}>", "exec"), namespace)


def test_every_readme_section_and_notebook_is_in_the_site():
    """A README section or notebook added without a place in the site fails here."""
    import hooks  # docs/hooks.py, which pastes the README's sections in

    _, headings = hooks._readme_sections()
    sections = {f"## {title}" for _, level, title in headings if level == 2}
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md"))
    included = {f"{hashes} {title}" for hashes, title in hooks._DIRECTIVE.findall(pages)}
    missing = sorted(sections - included)
    assert not missing, f"README sections in no docs/ page (add `<!-- readme: ## ... -->`): {missing}"
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    absent = [p.name for p in NOTEBOOKS if f"notebooks/{p.name}" not in nav]
    assert not absent, f"notebooks missing from the nav of mkdocs.yml: {absent}"
