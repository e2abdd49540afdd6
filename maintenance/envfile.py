"""What a cron job will see of the configuration: the `.env` file, not the shell.

Cron starts jobs with an almost empty environment, so a variable only `export`ed in the
shell that ran `crontab add` never reaches them; check W201 compares the two.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from maintenance import registry
from maintenance.conf import declared_settings


def cron_variables() -> list[str]:
    """Variables that change what a cron job does: the declared settings marked `cron`
    (maintenance/conf.py and each app's table), and each task's `<TASK>_CRON`."""
    declared = [name for name, setting in declared_settings().items() if setting.cron]
    return [*declared, *(f"{name.upper()}_CRON" for name in registry.names())]


# `KEY=value  # note`: a `#` after whitespace starts a comment, outside quotes, as in a
# shell and Docker Compose; `KEY=a#b` keeps its `#`.
INLINE_COMMENT = re.compile(
    r"""^(?P<assignment>
        \s* (?:export\s+)? [A-Za-z_0-9]+ =
        (?: '[^']*'                              # single-quoted
          | "(?:[^"\\]|\\.)*"                    # double-quoted, with escapes
          | [^'"\s\#]\S* (?:[ \t]+[^\s\#]\S*)*      # unquoted words
          | )
    ) [ \t]+ \#.*$""",
    re.VERBOSE,
)


def without_inline_comments(text: str) -> str:
    """An env file's text with the inline comments removed (the settings read this)."""
    lines = text.splitlines()
    return "\n".join(INLINE_COMMENT.sub(r"\g<assignment>", line).rstrip() for line in lines)


def env_file_values(path: str) -> dict[str, str]:
    """The `KEY=value` lines of an env file (enough to compare, not a full parser)."""
    if not path or not Path(path).is_file():
        return {}
    values = {}
    for line in without_inline_comments(Path(path).read_text()).splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def shell_only_variables(environ: Mapping[str, str], env_file: str) -> list[str]:
    """Variables set here that a cron job will not see, or will see with another value."""
    in_file = env_file_values(env_file)
    return [
        name for name in cron_variables() if name in environ and in_file.get(name) != environ[name]
    ]
