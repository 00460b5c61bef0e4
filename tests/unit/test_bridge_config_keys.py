"""docs/salesforce.md lists every bridge.yaml key, from the one key list the validator reads."""

from __future__ import annotations

import pathlib
import re

import pytest
from smsrelay_salesforce.config import DEFAULT_FIELDS, config_from_mapping
from smsrelay_salesforce.keys import KEYS, reference_markdown, section_keys

from smsrelay.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "salesforce.md"
TOKEN = {"auth": "token", "instance_url": "https://acme.my.salesforce.com", "access_token": "${SF_TOKEN}"}
ENV = {"SF_TOKEN": "00Dxx0000001gPL!AQ0AQH0dMHZfz972Szmpkb58urFRkgeBGsxL"}


def test_the_docs_table_is_the_generated_one() -> None:
    text = DOC.read_text()
    m = re.search(r"<!-- bridge.yaml keys: begin \(generated\) -->\n(.*?)<!-- bridge.yaml keys: end -->", text, re.S)
    assert m, "docs/salesforce.md lost its generated key table"
    assert m.group(1) == reference_markdown(), (
        "docs/salesforce.md's key table is stale: paste `python -m smsrelay_salesforce.keys` between its markers"
    )


@pytest.mark.parametrize("section", ["salesforce", "send", "limits", "mapping", "mapping.person"])
def test_every_key_the_validator_accepts_is_listed_and_no_other(section: str) -> None:
    listed = section_keys(section)
    assert listed, section
    data: dict[str, object] = {"salesforce": dict(TOKEN)}
    target: dict[str, object] = data
    for part in section.split("."):
        target = target.setdefault(part, {})  # type: ignore[assignment]
    target["not_a_key"] = 1
    with pytest.raises(ConfigError, match="unknown key; known keys") as info:
        config_from_mapping(data, env=ENV)
    known = set(re.search(r"known keys: (.*)$", info.value.message).group(1).split(", "))  # type: ignore[union-attr]
    assert known == listed


def test_every_mapped_field_and_top_level_key_is_in_the_table() -> None:
    table = reference_markdown()
    for logical, fields in DEFAULT_FIELDS.items():
        for name in fields:
            assert f"`mapping.{logical}.fields.{name}`" in table
    for key in KEYS:
        assert f"`{key.path}`" in table
    assert {k.path.split(".")[0] for k in KEYS} == {"salesforce", "sms", "mapping", "send", "limits", "state_file"}
