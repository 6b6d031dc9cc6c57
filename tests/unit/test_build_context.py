"""The build context: .dockerignore rules, globs, and sources that would leave the context."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.images.context import BuildContext, ContextError, IgnoreRules

pytestmark = pytest.mark.unit


def test_dockerignore_rules_follow_docker() -> None:
    rules = IgnoreRules(["# comment", "*.log", "build/", "**/secret*", "!keep.log", "/tmp"])
    assert rules.ignored("a.log")
    assert not rules.ignored("keep.log")
    assert not rules.ignored("sub/a.log")  # `*` does not cross directories
    assert rules.ignored("build/x/y")
    assert rules.ignored("deep/er/secret.txt")
    assert rules.ignored("tmp")
    assert not rules.ignored("src/main.py")


@pytest.fixture
def context(tmp_path: Path) -> BuildContext:
    root = tmp_path / "ctx"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("a")
    (root / "src" / "b.py").write_text("b")
    (root / "notes.log").write_text("log")
    (tmp_path / "outside").write_text("secret")
    os.symlink("../outside", root / "up")
    os.symlink("/etc", root / "etc")
    os.symlink("src/a.py", root / "inside")
    (root / ".dockerignore").write_text("*.log\n")
    return BuildContext.load(root)


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("../outside", "outside the build context"),
        ("/etc/passwd", "absolute source path"),
        ("up", "symlink up -> ../outside leads outside"),
        ("etc/passwd", "symlink etc -> /etc leads outside"),
        ("src/../../outside", "outside the build context"),
        ("notes.log", "excluded by .dockerignore"),
        ("missing", "not found"),
        ("*.txt", "no source files match"),
    ],
)
def test_sources_outside_or_missing_are_refused(
    context: BuildContext, source: str, words: str
) -> None:
    with pytest.raises(ContextError, match=words):
        context.sources(source)


def test_globs_and_inside_symlinks_resolve(context: BuildContext) -> None:
    assert [s.name for s in context.sources("src/*.py")] == ["src/a.py", "src/b.py"]
    assert context.sources("inside")[0].path == context.root / "src" / "a.py"
    assert [s.name for s in context.sources("i*")] == ["inside"]
    with pytest.raises(ContextError, match="leads outside"):
        context.sources("*")  # the glob meets `etc -> /etc`


def test_content_digest_ignores_timestamps_but_not_content(context: BuildContext) -> None:
    sources = context.sources("src")
    first = context.content_digest(sources)
    os.utime(context.root / "src" / "a.py", (1, 1))
    assert context.content_digest(sources) == first
    (context.root / "src" / "a.py").write_text("changed")
    assert context.content_digest(sources) != first
