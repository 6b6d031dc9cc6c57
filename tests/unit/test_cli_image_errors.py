"""The image and build verbs print an error as "Error: <message>", the message as written."""

from __future__ import annotations

import pytest

from dockyard.cli.image_commands import print_error

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("message", [
    "invalid reference 'no[/x]such'",  # once a rich MarkupError instead of the message
    "cannot reach registry [red]r:5000[/red]",  # once printed without its brackets
    "plain",
])
def test_the_message_is_printed_as_written(message: str, capsys: pytest.CaptureFixture[str]
                                           ) -> None:  # fmt: skip
    print_error(message)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"Error: {message}\n"
