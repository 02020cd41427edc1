"""MkDocs hooks: build the site from the repository's own files, copying nothing.

- `on_files` adds `notebooks/*.ipynb` (rendered by mkdocs-jupyter with their saved
  outputs), `benchmarks/results.md` and the benchmark plots, as if they were in `docs/`.
- `on_page_markdown` replaces a line `<!-- readme: ## Heading -->` with that section of
  `README.md` (its body, without the heading line, subsections included, headings shifted
  to sit under the page's title; `# Title`: the introduction alone), so the guides and the README never drift apart. A
  heading that is not in the README fails the build.
"""

import os
import pathlib
import re

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXTRA_FILES = ["notebooks/*.ipynb", "benchmarks/results.md", "benchmarks/*.png"]
_DIRECTIVE = re.compile(r"^<!-- readme: (#+) (.+?) -->\s*$", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~)")
# README mentions of the notebooks and of benchmarks/results.md become links.
_FILE_MENTION = re.compile(r"`((?:notebooks/\w+\.ipynb)|(?:benchmarks/results\.md))`")


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files, config):
    for pattern in EXTRA_FILES:
        for path in sorted(ROOT.glob(pattern)):
            uri = path.relative_to(ROOT).as_posix()
            if files.get_file_from_path(uri) is None:
                # A plain File rooted at the repository (not `File.generated`): the
                # wrapper mkdocs-jupyter puts around notebooks reads `src_dir`.
                files.append(File(uri, src_dir=str(ROOT), dest_dir=config.site_dir,
                                  use_directory_urls=config.use_directory_urls))
    return files


def _readme_sections():
    """README lines with, for each heading outside code fences, its level and text."""
    lines = README.read_text(encoding="utf-8").splitlines()
    headings, in_fence = [], False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := re.match(r"^(#+) (.+)$", line)):
            headings.append((i, len(m.group(1)), m.group(2).strip()))
    return lines, headings


def readme_section(level: int, title: str) -> str:
    """The body of README section `title` at heading `level`; its subheadings move up
    `level - 1` levels, so that they sit right under the including page's `#` title."""
    lines, headings = _readme_sections()
    for k, (start, lvl, text) in enumerate(headings):
        if lvl == level and text == title:
            # `# Title` stands for the introduction: up to the first `##`.
            stop = level if level > 1 else 6
            end = next((i for i, lv, _ in headings[k + 1 :] if lv <= stop), len(lines))
            body, in_fence = [], False
            for line in lines[start + 1 : end]:
                if _FENCE.match(line):
                    in_fence = not in_fence
                elif not in_fence and line.startswith("#"):
                    line = line[level - 1 :]
                body.append(line)
            return "\n".join(body).strip("\n")
    found = ", ".join(f"{'#' * lv} {t}" for _, lv, t in headings)
    raise PluginError(f"README.md has no heading {'#' * level} {title!r} (headings: {found})")


def _link_mentions(markdown: str, page_uri: str) -> str:
    page_dir = os.path.dirname(page_uri) or "."

    def link(m):
        if not (ROOT / m.group(1)).is_file():  # not written yet: leave the mention as is
            return m.group(0)
        target = os.path.relpath(m.group(1), page_dir).replace(os.sep, "/")
        return f"[`{m.group(1)}`]({target})"

    return _FILE_MENTION.sub(link, markdown)


def on_page_markdown(markdown, page, config, files):
    def include(m):
        return readme_section(len(m.group(1)), m.group(2))

    if _DIRECTIVE.search(markdown):
        markdown = _DIRECTIVE.sub(include, markdown)
        markdown = _link_mentions(markdown, page.file.src_uri)
    return markdown
