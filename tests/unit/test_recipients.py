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


def test_a_file_that_is_not_text_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(b"to,name\n+61491570156,\xff\xfe\n")

    with pytest.raises(ConfigError, match=r"is not (CSV text|valid CSV)") as err:
        read_recipients_csv(path)

    assert err.value.file == str(path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the recipients file"):
        read_recipients_csv(tmp_path / "absent.csv")
