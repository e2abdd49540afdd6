"""`.env.example` lists every variable the settings read, each under a comment line, so an
operator copying it sees every knob; a setting added to a table without a line here fails."""

import re
from pathlib import Path

from maintenance.conf import declared_settings

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def _lines() -> list[str]:
    return ENV_EXAMPLE.read_text().splitlines()


def test_every_declared_variable_is_in_env_example():
    listed = {m[1] for line in _lines() if (m := re.match(r"#?([A-Z][A-Z0-9_]*)=", line))}
    variables = {name for name, setting in declared_settings().items() if setting.env}

    assert sorted(variables - listed) == []


def test_every_variable_in_env_example_has_a_comment_above_it():
    """A variable sits right under its comment, or in a run of variables (the per-task
    ones) right under theirs."""
    uncommented, above = [], ""
    for line in _lines():
        if re.match(r"[A-Z][A-Z0-9_]*=", line):
            if not above.startswith("#"):
                uncommented.append(line.partition("=")[0])
            continue
        above = line

    assert uncommented == []
