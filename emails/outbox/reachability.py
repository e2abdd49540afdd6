"""Whether a claimed email may still go to its user, decided by the database just before
the message starts, not only when it was scheduled or claimed.

Two verdicts, two outcomes: an *unreachable* user (opted out, deactivated, no address,
address suppressed, or the user is gone) cancels the email; an *undeliverable* address
(one no retry can ever deliver to) fails it at once, with the reason.

The unreachable verdict is one small `SELECT` on the email's row (`verdict_sql`). The
sender folds it into the round trip it makes anyway for the previous message's "sent"
record (`sent_status_writer.py`), so on PostgreSQL checking each message costs no round
trip of its own; `unreachable_reason` runs it alone.
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection

from emails.models import EmailPreference, EmailSuppression, ScheduledEmail

USER_GONE = "user deleted"  # the row went with its user (cascade) while it was claimed


class Unreachable(Exception):
    """The email's user may no longer receive it; nothing of the message was sent."""


@cache
def verdict_sql(placeholder: str) -> str:
    """A `SELECT` of one row and column: why the email whose id is `placeholder` must not
    go now, or '' when it may. No row: the email (and its user) is gone."""
    user = get_user_model()._meta
    preference = EmailPreference._meta
    opt_out = preference.get_field("onboarding_opt_out").column
    return (  # table and column names come from model metadata; the id is a parameter
        "SELECT CASE"  # noqa: S608
        f" WHEN p.{opt_out} THEN 'unsubscribed'"
        f" WHEN NOT u.{user.get_field('is_active').column} THEN 'user deactivated'"
        f" WHEN u.{user.get_field('email').column} = '' THEN 'user has no email address'"
        f" WHEN EXISTS (SELECT 1 FROM {EmailSuppression._meta.db_table} s"
        f" WHERE s.address = LOWER(u.{user.get_field('email').column})) THEN 'address suppressed'"
        " ELSE '' END"
        f" FROM {ScheduledEmail._meta.db_table} e"
        f" JOIN {user.db_table} u ON u.{user.pk.column} = e.user_id"
        f" LEFT JOIN {preference.db_table} p ON p.{preference.get_field('user').column} = e.user_id"
        f" WHERE e.id = {placeholder}"
    )


def unreachable_reason(email: ScheduledEmail) -> str:
    """Why `email` must not be sent now (its user opted out, was deactivated or deleted,
    has no address, or the address is on the suppression list), or "" when it may go.
    One query, reading the database as it is now."""
    with connection.cursor() as cursor:
        cursor.execute(verdict_sql("%s"), [email_id(email)])
        row = cursor.fetchone()
    return USER_GONE if row is None else row[0]


def email_id(email: ScheduledEmail):
    """The email's id as this database stores it (a parameter of raw SQL)."""
    return ScheduledEmail._meta.pk.get_db_prep_value(email.pk, connection)


def undeliverable_reason(address: str) -> str:
    """Why `address` can never receive mail (a line break in it, a list of addresses,
    invalid syntax), or "" when it looks like one mailbox."""
    if "\r" in address or "\n" in address:
        return "undeliverable address: it contains a line break"
    if "," in address or ";" in address:
        return "undeliverable address: a list of addresses, not one mailbox"
    try:
        validate_email(address)
    except ValidationError:
        return "undeliverable address: invalid syntax"
    return ""
