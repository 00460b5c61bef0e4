"""Recipients from a CSV file: one phone column, every other column a template variable.

The CLI's ``--to-file`` and the GitHub Action's ``to-file`` read the same files this way.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "team.csv"
>>> _ = path.write_text("phone,name\\n+61491570156,Ann\\n")
>>> [(row.line, row.recipient.to, dict(row.recipient.vars)) for row in read_recipients_csv(path)]
[(2, '+61491570156', {'name': 'Ann'})]
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Collection
from dataclasses import dataclass

from smsrelay.errors import ConfigError
from smsrelay.model import Recipient

__all__ = ["PHONE_COLUMNS", "CsvRecipient", "read_recipients_csv"]

# The first of these a header holds is the phone column (case and spaces ignored).
PHONE_COLUMNS = ("to", "phone", "mobile", "number", "msisdn")
# A byte that is not UTF-8, as errors="surrogateescape" reads it: the file is decoded in
# blocks, so a decoding error would name the block's first line, not the byte's.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class CsvRecipient:
    """One row of a recipients file: the recipient and the file line it came from."""

    line: int
    recipient: Recipient


def read_recipients_csv(path: str | os.PathLike[str], *, reserved: Collection[str] = ()) -> list[CsvRecipient]:
    """Every recipient row of the CSV at ``path``, skipping blank lines.

    Column names are matched lower-cased and stripped; values are stripped. A column
    named in ``reserved`` is refused (an integration's own template names). Raises
    :class:`~smsrelay.ConfigError` with ``file`` and ``line`` set; its ``detail`` is
    the problem without the location.
    """
    source = os.fspath(path)
    try:
        # newline="": the csv module reads line ends itself, inside quoted cells too.
        handle = open(source, newline="", encoding="utf-8-sig", errors="surrogateescape")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot read the recipients file: {exc.strerror}", file=source) from None
    out: list[CsvRecipient] = []
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = [f.strip().lower() for f in reader.fieldnames or []]
        except csv.Error as exc:
            raise ConfigError(f"is not CSV text: {exc}", file=source, line=1) from None
        _check_utf8(header, source, 1)
        column = next((c for c in PHONE_COLUMNS if c in header), None)
        if column is None:
            raise ConfigError(f"the CSV needs a column named one of: {', '.join(PHONE_COLUMNS)}", file=source, line=1)
        clash = sorted(set(header) & set(reserved))
        if clash:
            raise ConfigError(f"column {clash[0]!r} would hide the template's own {clash[0]!r}", file=source, line=1)
        try:
            for row in reader:
                # A row longer than the header puts its extra cells under the key None, and a
                # column without a name is no variable: both are ignored.
                clean = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k and k.strip()}
                _check_utf8(clean.values(), source, reader.line_num)
                number = clean.pop(column)
                if not number and not any(clean.values()):
                    continue  # a blank line
                if not number:
                    raise ConfigError(f"no phone number in column {column!r}", file=source, line=reader.line_num)
                out.append(CsvRecipient(reader.line_num, Recipient(number, vars=clean)))
        except csv.Error as exc:
            # The csv reader's own count: DictReader's moves only once a row has been read.
            raise ConfigError(f"is not valid CSV: {exc}", file=source, line=reader.reader.line_num) from None
    return out


def _check_utf8(cells: Collection[str], source: str, line: int) -> None:
    for cell in cells:
        if bad := _NOT_UTF8.search(cell):
            byte = ord(bad.group()) - 0xDC00
            message = f"is not UTF-8 text (byte 0x{byte:02x}); save the file as CSV UTF-8"
            raise ConfigError(message, file=source, line=line)
