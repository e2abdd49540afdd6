"""`LOG_FORMAT=json`: one JSON object per line, for log shippers.

An event logged through `maintenance.logs.log_events.log_event` carries its fields
(task, trigger, run, counts, ...) as top-level JSON keys; any other record keeps just its message.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from maintenance.isotime import iso_utc


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "timestamp": iso_utc(datetime.fromtimestamp(record.created, UTC), "milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", None),
            "message": record.getMessage(),
        }
        for key, value in (getattr(record, "event_fields", None) or {}).items():
            data.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str)
