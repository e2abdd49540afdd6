"""The schedule: one cron grammar (`cron.py`) that the system checks, the in-process
scheduler, `maintenance_schedule --next` and every export read, and the exporters
(`exports.py`, one module per format)."""
