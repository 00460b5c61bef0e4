"""bridge.yaml's ``sms:`` given as a routing config: refused plainly, naming the file, line and key.

The bridge sends through one provider account; routing it is not built yet (docs/routing.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from smsrelay_salesforce.config import load_config

from smsrelay import ConfigError

BRIDGE_YAML = """\
salesforce:
  auth: token
  instance_url: https://acme.my.salesforce.com
  access_token: ${SF_TOKEN}
sms:
  accounts:
    th: {provider: mesms, api_key: "${MESMS_KEY}", sender: ACME}
  routes:
    - accounts: [th]
"""


def test_a_routing_config_in_sms_is_refused_naming_the_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(BRIDGE_YAML, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"SF_TOKEN": "00Dxx!abc", "MESMS_KEY": "k"})
    assert (info.value.file, info.value.line, info.value.field) == (str(path), 8, "sms.routes")
    assert "not supported by the bridge yet" in str(info.value)
