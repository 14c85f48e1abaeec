"""The provisioning hook: how restrict, terminate and restore reach the systems that run the
customer's service.

``workflow.action_hook_url``: a POST of ``{"action", "case", "customer_id", "customer_name",
"reason"}`` as JSON; any 2xx is done. ``workflow.action_hook_command``: the command with ACTION
CUSTOMER_ID CASE appended and the same JSON on stdin; exit status 0 is done. Neither set: the
action is recorded on the case only (the desk cannot touch the network itself). Anything else
raises :class:`HookError` and the step is retried with backoff. The provisioning system must
treat a repeated action as done: a step may be delivered twice.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from typing import Any

from ..core.config import WorkflowConfig


class HookError(Exception):
    """The provisioning system did not confirm the action; it is retried."""


def call_hook(cfg: WorkflowConfig, payload: dict[str, Any]) -> str:
    """Carry out one action; returns what the provisioning system said."""
    body = json.dumps(payload).encode()
    if cfg.action_hook_url:
        request = urllib.request.Request(
            cfg.action_hook_url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "abuse-desk"})
        try:
            with urllib.request.urlopen(request, timeout=cfg.action_hook_timeout_s) as answer:
                text = answer.read(4096).decode("utf-8", "replace")
                return f"HTTP {answer.status}: {text[:200]}"
        except urllib.error.HTTPError as exc:
            raise HookError(f"{cfg.action_hook_url} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise HookError(f"{cfg.action_hook_url} unreachable: {exc}") from exc
    if cfg.action_hook_command:
        argv = [*cfg.action_hook_command, str(payload["action"]), str(payload["customer_id"]),
                str(payload["case"])]
        try:
            done = subprocess.run(argv, input=body, capture_output=True,
                                  timeout=cfg.action_hook_timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HookError(f"{argv[0]} failed to run: {exc}") from exc
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip()[-300:]
            raise HookError(f"{argv[0]} exited {done.returncode}: {err}")
        return done.stdout.decode("utf-8", "replace").strip()[-300:] or "exit 0"
    return "recorded only (no workflow.action_hook_url or action_hook_command configured)"
