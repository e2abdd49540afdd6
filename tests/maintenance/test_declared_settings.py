"""Each setting is declared once, in its app's table: what the log filter redacts and what
the cron check (W201) compares come from the same `secret` and `cron` flags."""

import logging

from maintenance.conf import declared_settings
from maintenance.envfile import cron_variables, shell_only_variables
from maintenance.logs.redaction import RedactSecretsFilter

TOKEN = "metrics-token-0123456789"


def test_a_setting_declared_secret_never_reaches_a_log_line(settings):
    settings.METRICS_TOKEN = TOKEN
    record = logging.LogRecord("maintenance", logging.INFO, __file__, 1, "token %s", (TOKEN,), None)

    RedactSecretsFilter().filter(record)

    assert TOKEN not in record.getMessage() and "[redacted]" in record.getMessage()


def test_every_setting_a_cron_job_needs_is_compared_with_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("CRON_SECRET=same\n")
    needed = [name for name, setting in declared_settings().items() if setting.cron]
    shell = {name: "from-the-shell" for name in needed} | {"CRON_SECRET": "same"}

    assert {"DATABASE_URL", "SECRET_KEY", "CRON_SECRET", "APP_URL"} <= set(cron_variables())
    assert shell_only_variables(shell, str(env_file)) == [n for n in needed if n != "CRON_SECRET"]
