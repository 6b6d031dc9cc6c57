"""The Dockerfile parser: directives, continuations, heredocs, flags, stages, expansion;
every syntax error names its line."""

from __future__ import annotations

import pytest

from dockyard.images.dockerfile import (
    DockerfileSyntaxError,
    expand_word,
    expand_words,
    key_values,
    parse_dockerfile,
)

pytestmark = pytest.mark.unit


def test_directives_continuations_comments_and_stages() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=busybox\n"
        "FROM $BASE AS build\n"
        "RUN echo a \\\n"
        "# a comment inside the continuation\n"
        "  && echo b\n"
        "\n"
        "FROM scratch\n"
        "COPY --from=build --chmod=755 /a /b/\n"
    )
    df = parse_dockerfile(text)
    assert df.directives == {"syntax": "docker/dockerfile:1"}
    assert [a.value for a in df.global_args] == ["BASE=busybox"]
    build, final = df.stages
    assert (build.name, build.base, final.base) == ("build", "$BASE", "scratch")
    run = build.instructions[0]
    assert run.value == "echo a   && echo b"
    assert run.line == 4
    copy = final.instructions[0]
    assert copy.flags == {"from": "build", "chmod": "755"}
    assert df.stage("build") is build
    assert df.stage("1") is final


def test_escape_directive_changes_the_continuation_character() -> None:
    df = parse_dockerfile("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo ok\n")
    assert df.stages[0].instructions[0].value == "dir c:\\   && echo ok"


def test_heredocs_are_read_with_their_content() -> None:
    df = parse_dockerfile("FROM x\nRUN <<EOF\necho one\necho two\nEOF\nCMD [\"sh\"]\n")
    run, cmd = df.stages[0].instructions
    assert run.heredocs[0].content == "echo one\necho two\n"
    assert cmd.json_args() == ["sh"]
    assert cmd.line == 6


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("FROM x\nRUNN echo\n", 2, "unknown instruction: RUNN"),
        ("FROM x\nRUN true\nCOPY onlyone\n", 3, "at least two arguments"),
        ("FROM x\nRUN <<EOF\necho\n", 2, "not terminated"),
        ("FROM x\n\nCOPY --frm=a b c\n", 3, "unknown flag --frm"),
        ("RUN echo\nFROM x\n", 1, "only ARG may come before the first FROM"),
        ("FROM x\nSHELL sh -c\n", 2, "JSON array"),
        ("FROM x\nONBUILD FROM y\n", 2, "not allowed as an ONBUILD trigger"),
        ("FROM a AS one\nFROM b AS one\n", 2, "used twice"),
        ("# nothing\n", 1, "no FROM"),
    ],
)
def test_syntax_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(DockerfileSyntaxError) as info:
        parse_dockerfile(text)
    assert str(info.value).startswith(f"line {line}:")
    assert words in str(info.value)


def test_missing_stage_is_named_with_the_choices() -> None:
    df = parse_dockerfile("FROM x AS build\nFROM y AS final\n")
    with pytest.raises(DockerfileSyntaxError, match="stage 'tests' not found.*build, final"):
        df.stage("tests")


def test_expansion_follows_docker_rules() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand_words('x "$A b" \'$A\' ${B:-d $A} c\\ d', env) == ["x", "1 b", "$A", "d 1",
                                                                     "c d"]
    assert expand_word("${EMPTY:-fallback}/${EMPTY-kept}${A:+set}", env) == "fallback/set"
    with pytest.raises(DockerfileSyntaxError, match="line 7: NEEDED: give it"):
        expand_word("${NEEDED:?give it}", env, line=7)


def test_env_and_label_pairs() -> None:
    df = parse_dockerfile('FROM x\nENV A=1 B="two words"\nENV LEGACY value with spaces\n')
    new, legacy = df.stages[0].instructions
    assert key_values(new, {}) == [("A", "1"), ("B", "two words")]
    assert key_values(legacy, {}) == [("LEGACY", "value with spaces")]
