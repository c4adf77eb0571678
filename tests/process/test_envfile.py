"""Environment files read as systemd's ``EnvironmentFile=`` reads them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervision._process.envfile import EnvFileError, _machine, _simple_assignments, load, parse


def test_plain_assignments_comments_and_whitespace() -> None:
    text = "# a comment\n; another\n\n  A=1\nB = two words  \n  C=\nD\nE=x # not a comment\n"
    assert parse(text) == {"A": "1", "B": "two words", "C": "", "E": "x # not a comment"}


def test_single_quotes_are_literal_and_may_span_lines() -> None:
    assert parse("A='$HOME \\n \"x\"'\nB='one\ntwo'\n") == {"A": '$HOME \\n "x"', "B": "one\ntwo"}


def test_double_quotes_escape_only_shell_specials() -> None:
    text = 'A="say \\"hi\\" \\$X \\\\ \\` \\n"\n'
    assert parse(text) == {"A": 'say "hi" $X \\ ` \\n'}


def test_quoted_pieces_join_and_spaces_between_them_are_dropped() -> None:
    assert parse('A="a" \'b\'c\nB=x"y"\n') == {"A": "abc", "B": 'x"y"'}


def test_backslash_escapes_and_continuation_lines() -> None:
    text = 'A=one\\\ntwo\nB=\\ lead\nC=trail\\ \nD="x\\\ny"\n'
    assert parse(text) == {"A": "onetwo", "B": " lead", "C": "trail ", "D": "xy"}


def test_last_line_without_newline_and_crlf() -> None:
    assert parse("A=1\r\nB='2'\r\nC=3") == {"A": "1", "B": "2", "C": "3"}


def test_a_comment_ending_in_a_backslash_does_not_swallow_the_next_line() -> None:
    assert parse("# note \\\nA=1\n") == {"A": "1"}


def test_later_assignment_wins_and_bad_names_are_ignored() -> None:
    assert parse("A=1\nA=2\n1BAD=x\nGOOD_1=y\n") == {"A": "2", "GOOD_1": "y"}


def test_load_merges_files_in_order_and_tolerates_optional_missing(tmp_path: Path) -> None:
    first = tmp_path / "first.env"
    second = tmp_path / "second.env"
    first.write_text("A=1\nB=1\n")
    second.write_text("B=2\n")
    assert load([str(first), "-" + str(tmp_path / "missing.env"), str(second)]) == {"A": "1", "B": "2"}


def test_load_fails_on_a_missing_required_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.env")
    with pytest.raises(EnvFileError) as caught:
        load([missing])
    assert caught.value.filename == missing
    assert "missing" in str(caught.value)


def test_load_fails_on_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_bytes(b"A=\xff\n")
    with pytest.raises(EnvFileError, match="UTF-8"):
        load([os.fspath(path)])


@pytest.mark.parametrize(
    "text",
    ["A=1\nB = 2 \n", "  # c\n;d\nA B=x y  \n\nC\nD=\n", "A=1\r\nB=2\rC=3", "X= a#b ;c \nY=\t\tz", "=v\nK=v=w\n"],
)
def test_the_fast_path_for_plain_files_agrees_with_the_state_machine(text: str) -> None:
    assert list(_simple_assignments(text)) == list(_machine(text))


def test_an_unchanged_file_is_parsed_once_and_a_changed_one_again(tmp_path: Path) -> None:
    path = tmp_path / "app.env"
    path.write_text("A=1\n")
    assert load([str(path)]) == {"A": "1"}
    path.write_text("A=22\n")  # another size: read again, whatever the clock's resolution
    assert load([str(path)]) == {"A": "22"}
