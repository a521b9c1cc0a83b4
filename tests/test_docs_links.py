"""Every relative link in the repository's Markdown leads somewhere inside the repository.

A clone holds only what is tracked: a link to `../shared/CONTRACT.md` (outside the repository) or to
an untracked file works on one machine and nowhere else. So every relative link in every tracked
Markdown file must name a file or directory of the repository, and an `#anchor` into a Markdown
file must name one of its headings (by GitHub's slug rules) or an HTML anchor in it. Code blocks
and inline code are not links; `http(s):` and `mailto:` links are not checked.

Code cites the docs the same way (`docs/contract.md#escalation-rules` in a docstring): those
citations, written relative to the repository root, must resolve too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
# [text](dest "title") and ![alt](dest); one level of brackets inside the text.
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>\n]*>|[^\s()]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*(<[^>\n]*>|\S+)", re.M)
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# A citation of a Markdown file of the repository in code or configuration, from the root.
CITATION = re.compile(r"(?<![\w./-])((?:docs|bench)/[\w.-]+\.md|README\.md)(?:#([\w-]+))?")
CITING_SUFFIXES = (".py", ".toml", ".yml", ".yaml", ".cfg", ".sh")
CITING_NAMES = ("Dockerfile", "run")
MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
HTML_TAG = re.compile(r"<[^>]+>")


class Problem(NamedTuple):
    file: str
    line: int
    link: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.link}: {self.reason}"


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, each space a hyphen.

    github-slugger keeps letters, digits, marks, `-`, `_` and spaces; everything else goes.
    """
    text = HTML_TAG.sub("", MARKDOWN_LINK.sub(r"\1", text)).strip().lower()
    kept = (c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return "".join(kept).replace(" ", "-")


def _mask(text: str, pattern: re.Pattern[str]) -> str:
    """Blank out what pattern matches, keeping newlines so offsets still give line numbers."""
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _mask_fences(text: str) -> str:
    out: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append("")
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                if not line.strip().lstrip(fence[0]):
                    fence = None
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def anchors(text: str) -> set[str]:
    """Every `#fragment` a Markdown file offers: heading slugs (numbered when repeated) and HTML
    anchors."""
    seen: dict[str, int] = {}
    found: set[str] = set(HTML_ANCHOR.findall(text))
    lines = _mask(_mask_fences(text), HTML_COMMENT).split("\n")
    for i, line in enumerate(lines):
        heading: str | None = None
        m = ATX_HEADING.match(line)
        if m:
            heading = m.group(2) or ""
        elif i > 0 and SETEXT_UNDERLINE.match(line):
            above = lines[i - 1]
            if above.strip() and not re.match(r"^ {0,3}([#>|*+-]|\d+[.)]\s)", above):
                heading = above
        if heading is None:
            continue
        slug = github_slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(text: str) -> list[tuple[int, str]]:
    """(line, destination) of every inline link, image and reference definition outside code."""
    masked = _mask(_mask(_mask_fences(text), HTML_COMMENT), CODE_SPAN)
    found = [(m.start(1), m.group(1)) for m in INLINE_LINK.finditer(masked)]
    found += [(m.start(1), m.group(1)) for m in REFERENCE_DEF.finditer(masked)]
    return [(masked.count("\n", 0, pos) + 1, dest.strip("<>")) for pos, dest in sorted(found)]


def check_links(root: Path, markdown: list[str], present: set[str]) -> list[Problem]:
    """Problems with the relative links of the Markdown files (paths relative to root).

    present: the repository's files (relative, with `/`); a directory counts when it holds one.
    """
    dirs = {str(p) for f in present for p in Path(f).parents if str(p) != "."}
    anchor_cache: dict[str, set[str]] = {}
    problems: list[Problem] = []
    for name in markdown:
        source = root / name
        for line, dest in links(source.read_text(encoding="utf-8")):
            if SCHEME.match(dest) or dest.startswith("//"):
                continue  # http(s), mailto: not ours to check
            path_part, _, fragment = dest.partition("#")
            path_part = unquote(path_part)
            if path_part.startswith("/"):
                problems.append(
                    Problem(name, line, dest, "absolute path: write it relative to this file")
                )
                continue
            if path_part:
                full = os.path.normpath(source.parent / path_part)
                rel = os.path.relpath(full, root)
                if rel == ".." or rel.startswith(".." + os.sep):
                    problems.append(
                        Problem(name, line, dest, "leaves the repository: a clone has no such file")
                    )
                    continue
                target = Path(rel).as_posix()
                if target != "." and target not in present and target not in dirs:
                    problems.append(
                        Problem(name, line, dest, f"{target} is not a file of the repository")
                    )
                    continue
            else:
                target = name
            if fragment and target.endswith(".md"):
                if target not in anchor_cache:
                    anchor_cache[target] = anchors((root / target).read_text(encoding="utf-8"))
                if unquote(fragment) not in anchor_cache[target]:
                    problems.append(
                        Problem(name, line, dest, f"{target} has no heading or anchor #{fragment}")
                    )
    return problems


def check_citations(root: Path, sources: list[str], present: set[str]) -> list[Problem]:
    """Problems with the `docs/<file>.md#anchor` citations in code and configuration files."""
    anchor_cache: dict[str, set[str]] = {}
    problems: list[Problem] = []
    for name in sources:
        text = (root / name).read_text(encoding="utf-8", errors="replace")
        for m in CITATION.finditer(text):
            target, fragment = m.group(1), m.group(2)
            line = text.count("\n", 0, m.start()) + 1
            if target not in present:
                problems.append(
                    Problem(name, line, m.group(0), f"{target} is not a file of the repository")
                )
                continue
            if fragment:
                if target not in anchor_cache:
                    anchor_cache[target] = anchors((root / target).read_text(encoding="utf-8"))
                if fragment not in anchor_cache[target]:
                    problems.append(
                        Problem(name, line, m.group(0), f"{target} has no heading #{fragment}")
                    )
    return problems


def _repository_files() -> set[str]:
    """Tracked files, and new ones not ignored (about to be committed), that exist on disk."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return {f for f in out.split("\0") if f and (ROOT / f).exists()}


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
def test_every_relative_link_in_the_repository_resolves() -> None:
    present = _repository_files()
    markdown = sorted(f for f in present if f.endswith(".md"))
    assert "README.md" in markdown and "docs/contract.md" in markdown
    problems = check_links(ROOT, markdown, present)
    assert not problems, "broken links:\n" + "\n".join(map(str, problems))


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
def test_every_docs_citation_in_code_resolves() -> None:
    present = _repository_files()
    this = Path(__file__).resolve().relative_to(ROOT).as_posix()  # its examples are bad on purpose
    sources = sorted(
        f
        for f in present
        if (f.endswith(CITING_SUFFIXES) or Path(f).name in CITING_NAMES) and f != this
    )
    assert "worker.py" in sources
    problems = check_citations(ROOT, sources, present)
    assert not problems, "stale citations:\n" + "\n".join(map(str, problems))


def test_a_stale_citation_in_code_is_named(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "contract.md").write_text("# Contract\n\n## Escalation rules\n")
    (tmp_path / "worker.py").write_text(
        '"""Rules: docs/contract.md#escalation-rules, docs/contract.md#queries."""\n'
        "# see docs/missing.md and ../shared/docs/contract.md (not a root citation)\n"
    )
    present = {"docs/contract.md", "worker.py"}
    problems = check_citations(tmp_path, ["worker.py"], present)
    assert [(p.line, p.link, p.reason) for p in problems] == [
        (1, "docs/contract.md#queries", "docs/contract.md has no heading #queries"),
        (2, "docs/missing.md", "docs/missing.md is not a file of the repository"),
    ]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Escalation rules", "escalation-rules"),
        ("Workflow input: `OpenTicket`", "workflow-input-openticket"),
        ("Encrypting ticket text (PII)", "encrypting-ticket-text-pii"),
        ("Response clocks, tags and rules", "response-clocks-tags-and-rules"),
        ("L1 → L2, then L3", "l1--l2-then-l3"),
        ("snake_case and kebab-case", "snake_case-and-kebab-case"),
        ("[Linked](other.md) *heading*", "linked-heading"),
        ("Größe über 256 KiB", "größe-über-256-kib"),
    ],
)
def test_slugs_follow_github(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_repeated_headings_are_numbered_and_code_is_not_a_heading() -> None:
    text = "# Notes\n\n## Notes\n\n```\n# not a heading\n```\n\nSetext\n------\n<a id='kept'></a>\n"
    assert anchors(text) == {"notes", "notes-1", "setext", "kept"}


def _repo(tmp_path: Path, files: dict[str, str]) -> list[Problem]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    markdown = sorted(f for f in files if f.endswith(".md"))
    return check_links(tmp_path, markdown, set(files))


def test_good_links_pass(tmp_path: Path) -> None:
    problems = _repo(
        tmp_path,
        {
            "README.md": "See [the contract](docs/contract.md#escalation-rules), [code](src/)\n"
            "and [below](#usage), [a wrapped\nlink](docs/contract.md), ![img](docs/a.png),\n"
            "[external](https://example.com/x#y), [ref].\n\n## Usage\n\n[ref]: docs/contract.md\n",
            "docs/contract.md": "# Contract\n\n## Escalation rules\n\n[back](../README.md#usage)\n",
            "docs/a.png": "",
            "src/x.py": "",
        },
    )
    assert problems == []


def test_each_kind_of_bad_link_is_named_with_file_and_line(tmp_path: Path) -> None:
    problems = _repo(
        tmp_path,
        {
            "README.md": "The contract: [CONTRACT](../shared/CONTRACT.md).\n"
            "[gone](docs/missing.md) and [no anchor](docs/contract.md#nope)\n"
            "[absolute](/docs/contract.md) [self](#nowhere)\n"
            "`[in code](missing-too.md)`\n\n```\n[in a block](missing-three.md)\n```\n"
            "[ref]: docs/not-there.md\n",
            "docs/contract.md": "# Contract\n\n[up and out](../../x.md)\n",
        },
    )
    assert [(p.file, p.line, p.link) for p in problems] == [
        ("README.md", 1, "../shared/CONTRACT.md"),
        ("README.md", 2, "docs/missing.md"),
        ("README.md", 2, "docs/contract.md#nope"),
        ("README.md", 3, "/docs/contract.md"),
        ("README.md", 3, "#nowhere"),
        ("README.md", 9, "docs/not-there.md"),
        ("docs/contract.md", 3, "../../x.md"),
    ]
    reasons = {p.link: p.reason for p in problems}
    assert "leaves the repository" in reasons["../shared/CONTRACT.md"]
    assert "leaves the repository" in reasons["../../x.md"]
    assert reasons["docs/missing.md"] == "docs/missing.md is not a file of the repository"
    assert reasons["docs/contract.md#nope"] == "docs/contract.md has no heading or anchor #nope"
    assert str(problems[0]).startswith("README.md:1: ../shared/CONTRACT.md: ")


def test_a_file_on_disk_but_not_in_the_repository_is_missing(tmp_path: Path) -> None:
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "notes.md").write_text("# ignored\n")
    (tmp_path / "README.md").write_text("[local only](.venv/notes.md)\n")
    problems = check_links(tmp_path, ["README.md"], {"README.md"})
    assert [p.reason for p in problems] == [".venv/notes.md is not a file of the repository"]


def test_the_readme_stays_a_readme() -> None:
    """A newcomer's page: the pitch, the two commands, a first ticket, pointers (issue 12: it
    had grown to 774 lines of benchmark narrative and configuration tables)."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, len(lines)
    text = "\n".join(lines)
    assert "python3 dev.py up" in text and "python3 dev.py test" in text
