"""The user the agent runs as, named in error lines: "not readable" alone does not say by whom."""

from __future__ import annotations

import os
import pwd


def effective_user() -> str:
    """The effective user's name, or ``uid N`` when it has none (a bare uid in a container)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"
