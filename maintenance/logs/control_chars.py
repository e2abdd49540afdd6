"""Text an operator typed, kept harmless for the terminals and pages that show it again.

A pause reason is printed by `maintenance_status`, in skip messages and in the admin. A
control character in it (`ESC ] 0 ; ... BEL` retitles a terminal, `ESC [ 2 J` clears it,
U+202E reverses what follows) would act on the reader's terminal instead of being read.
So such characters (Unicode categories Cc and Cf) are stripped when a reason comes in,
and escaped, the way `repr` writes them (`\\x1b`), wherever stored text goes out: rows
written by older versions may still hold them.
"""

from __future__ import annotations

import unicodedata

CONTROL_CATEGORIES = frozenset({"Cc", "Cf"})


def is_control(char: str) -> bool:
    return unicodedata.category(char) in CONTROL_CATEGORIES


def strip_controls(text: str) -> str:
    """`text` without its control characters; whitespace (tabs, newlines) becomes one
    space, so words on either side of a line break stay apart."""
    kept = "".join(char for char in text if char.isspace() or not is_control(char))
    return " ".join(kept.split())


def escape_controls(text: str) -> str:
    """`text` with each control character written as a visible escape (`\\x1b`, `\\n`,
    `\\u202e`) and everything else, spaces included, unchanged."""
    if not any(is_control(char) for char in text):
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii") if is_control(char) else char for char in text
    )
