"""The core's recipients CSV reader, which the CLI's --to-file and the Action's to-file share."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsrelay import ConfigError, read_recipients_csv


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "people.csv"
    path.write_text(text, encoding=encoding)
    return path


def test_rows_keep_their_line_and_every_other_column_as_a_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffName , Mobile\nAnn,+61491570156\n\n,\nBo , +61491570157 \n")

    rows = read_recipients_csv(path)

    assert [(r.line, r.recipient.to, dict(r.recipient.vars)) for r in rows] == [
        (2, "+61491570156", {"name": "Ann"}),
        (5, "+61491570157", {"name": "Bo"}),
    ]


def test_the_first_phone_column_in_the_documented_order_wins(tmp_path: Path) -> None:
    rows = read_recipients_csv(write(tmp_path, "number,to\n+61491570156,+61491570157\n"))

    assert rows[0].recipient.to == "+61491570157"
    assert dict(rows[0].recipient.vars) == {"number": "+61491570156"}


def test_cells_past_the_header_are_ignored(tmp_path: Path) -> None:
    rows = read_recipients_csv(write(tmp_path, "to,name\n+61491570156,Ann,extra\n"))

    assert dict(rows[0].recipient.vars) == {"name": "Ann"}


@pytest.mark.parametrize(
    ("text", "line", "detail"),
    [
        ("name,email\nAnn,a@example.com\n", 1, "needs a column named one of: to, phone, mobile, number, msisdn"),
        ("to,name\n+61491570156,Ann\n,Bo\n", 3, "no phone number in column 'to'"),
        ("to,github\n+61491570156,x\n", 1, "column 'github' would hide the template's own 'github'"),
    ],
)
def test_a_bad_file_names_the_file_and_line(tmp_path: Path, text: str, line: int, detail: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as err:
        read_recipients_csv(path, reserved=("github",))

    assert (err.value.file, err.value.line) == (str(path), line)
    assert detail in err.value.detail


@pytest.mark.parametrize(
    ("data", "line", "byte"),
    [
        (b"\xffto,name\n+61491570156,Ann\n", 1, "0xff"),
        # Within the first block the file is decoded in: the error still names the byte's own line.
        (b"to,name\n+61491570156,Ann\n+61491570157,Z\xfcrich\n", 3, "0xfc"),
    ],
)
def test_a_byte_that_is_not_utf8_names_its_line(tmp_path: Path, data: bytes, line: int, byte: str) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(data)

    with pytest.raises(ConfigError) as err:
        read_recipients_csv(path)

    assert (err.value.file, err.value.line) == (str(path), line)
    assert err.value.detail == f"is not UTF-8 text (byte {byte}); save the file as CSV UTF-8"


@pytest.mark.parametrize(
    ("text", "line", "detail"),
    [
        ("to," + "x" * 200_000 + "\n+61491570156,Ann\n", 1, "is not CSV text"),
        ("to,name\n+61491570156,Ann\n+61491570157," + "x" * 200_000 + "\n", 3, "is not valid CSV"),
    ],
)
def test_a_line_the_csv_module_refuses_is_named(tmp_path: Path, text: str, line: int, detail: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as err:
        read_recipients_csv(path)

    assert (err.value.file, err.value.line) == (str(path), line)
    assert err.value.detail == f"{detail}: field larger than field limit (131072)"


def test_a_quoted_cell_keeps_its_line_break_as_written(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(b'to,note\r\n+61491570156,"first\r\nsecond"\r\n')

    [row] = read_recipients_csv(path)

    assert dict(row.recipient.vars) == {"note": "first\r\nsecond"}


def test_a_column_without_a_name_is_no_variable(tmp_path: Path) -> None:
    rows = read_recipients_csv(write(tmp_path, "to,,name, \n+61491570156,x,Ann,y\n"))

    assert dict(rows[0].recipient.vars) == {"name": "Ann"}


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"

    with pytest.raises(ConfigError) as err:
        read_recipients_csv(path)

    assert (err.value.file, err.value.line) == (str(path), None)
    assert err.value.detail == "cannot read the recipients file: No such file or directory"
