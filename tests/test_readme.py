"""The README stays navigable and true to its set-up contract: it opens with the two set-up
commands (the second is what CI runs), and its contents list names every section and links
only to headings that exist."""

from __future__ import annotations

import re

from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _anchor(title: str, seen: dict[str, int]) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens,
    ``-1``, ``-2`` ... for repeats."""
    a = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
    n = seen.get(a, 0)
    seen[a] = n + 1
    return a if n == 0 else f"{a}-{n}"


def test_readme_opens_with_the_two_setup_commands_and_ci_runs_the_second():
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block and README.index("```bash") < README.index("\n## ")  # before any section
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_contents_list_every_section_and_every_link_resolves():
    seen: dict[str, int] = {}
    headings = [(len(h), t, _anchor(t, seen)) for h, t in re.findall(r"^(#{2,4}) (.+)$", README, re.M)]
    toc = README[README.index("**Contents**"):README.index("\n## ")]
    links = re.findall(r"^( *)- \[(.+)\]\(#([^)]+)\)$", toc, re.M)
    assert [(len(ind) // 2 + 2, t, a) for ind, t, a in links] == headings
