"""Every ```python block of README.md and docs/ runs as written, so no example can rot.

The blocks of one page run in order in one namespace (a later block may use what an
earlier one defined), in a fresh temporary working directory, with matplotlib's
non-interactive backend. ```bash and ```text blocks are not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, source) of each ```python block of a Markdown text."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in FENCE.finditer(text)]


def test_block_extraction_finds_fenced_python_only():
    text = "intro\n```python\nx = 1\n```\n```bash\nls\n```\n\n```python\ny = x + 1\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (10, "y = x + 1\n")]


WITH_CODE = [p for p in PAGES if python_blocks(p.read_text())]


def test_readme_and_docs_have_runnable_examples():
    assert ROOT / "README.md" in WITH_CODE and len(WITH_CODE) >= 5


@pytest.mark.parametrize("page", WITH_CODE, ids=[str(p.relative_to(ROOT)) for p in WITH_CODE])
def test_code_blocks_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page.read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__main__"}
    for line, source in blocks:
        code = compile(source, f"{page.relative_to(ROOT)}:{line}", "exec")
        try:
            exec(code, namespace)  # noqa: S102 - running the documentation's own examples
        except Exception as error:
            pytest.fail(f"{page.relative_to(ROOT)}, block at line {line}: "
                        f"{type(error).__name__}: {error}")
    plt = namespace.get("plt")
    if plt is not None and hasattr(plt, "close"):
        plt.close("all")
