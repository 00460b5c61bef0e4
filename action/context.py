"""The template context: ``github``, ``env`` and ``vars``, named as in workflow expressions.

``{{ github.repository }}``, ``{{ github.run_id }}`` and ``{{ github.event.* }}`` mean
what ``${{ github.repository }}`` means in a workflow (the lesson of Slack's action,
whose camelCase context broke such names: slack-github-action #171, #203).

>>> github_context({"GITHUB_REPOSITORY": "acme/api", "GITHUB_RUN_ID": "7"})["repository"]
'acme/api'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["GITHUB_FIELDS", "env_context", "github_context", "template_context"]

# github.<field> <- GITHUB_<FIELD>, the default variables the runner sets
# (docs: "Store information in variables", default environment variables).
GITHUB_FIELDS = (
    "action",
    "action_ref",
    "actor",
    "actor_id",
    "api_url",
    "base_ref",
    "event_name",
    "graphql_url",
    "head_ref",
    "job",
    "ref",
    "ref_name",
    "ref_protected",
    "ref_type",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "retention_days",
    "run_attempt",
    "run_id",
    "run_number",
    "server_url",
    "sha",
    "triggering_actor",
    "workflow",
    "workflow_ref",
    "workflow_sha",
    "workspace",
)
# Never offered to templates: inputs (the API key is one), the runner's own tokens.
_HIDDEN_ENV = re.compile(r"^(INPUT_|ACTIONS_)|KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.I)


def github_context(env: Mapping[str, str]) -> dict[str, Any]:
    """``github.*`` from the ``GITHUB_*`` variables and the event payload.

    Adds ``run_url``, the link to this run, which workflows usually build by hand.
    """
    ctx: dict[str, Any] = {name: env.get(f"GITHUB_{name.upper()}", "") for name in GITHUB_FIELDS}
    event: Any = {}
    path = env.get("GITHUB_EVENT_PATH")
    if path:
        try:
            event = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # ASSUMPTION: a missing or unreadable payload is not worth failing a notification for.
            event = {}
    ctx["event"] = event
    if ctx["server_url"] and ctx["repository"] and ctx["run_id"]:
        ctx["run_url"] = f"{ctx['server_url']}/{ctx['repository']}/actions/runs/{ctx['run_id']}"
    else:
        ctx["run_url"] = ""
    return ctx


def env_context(env: Mapping[str, str]) -> dict[str, str]:
    """The environment, minus inputs and anything named like a credential."""
    return {k: v for k, v in env.items() if not _HIDDEN_ENV.search(k)}


def template_context(env: Mapping[str, str], template_vars: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a message template may use: ``github``, ``env`` and ``vars``."""
    return {"github": github_context(env), "env": env_context(env), "vars": dict(template_vars)}
