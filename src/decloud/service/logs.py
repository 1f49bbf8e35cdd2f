"""How every service logs: one line per record on stderr, as text for a person or as JSON
for a log collector (`decloud SERVICE run --json`).

The services' own loggers, uvicorn's (errors and one access line per request) and the
libraries' all go through the root logger, so both formats cover everything. httpx and
httpcore log every request they send at INFO, which for a worker or a scheduler is a line
per ping and per poll: they are kept at WARNING.

No record carries a secret: services never pass keys, passwords or signatures to a logger.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LIBRARIES = ("httpx", "httpcore")


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


JsonLogsOption = Annotated[
    bool, typer.Option("--json", help="Log JSON lines (time, level, logger, message) on stderr")
]
LogLevelOption = Annotated[LogLevel, typer.Option("--log-level", help="Least severe level logged")]


class JsonLines(logging.Formatter):
    """A record as one JSON object: time (ISO 8601, UTC), level, logger, message, and the
    exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(*, as_json: bool = False, level: LogLevel = LogLevel.INFO) -> None:
    """Send every record at `level` or above to stderr, in one of the two formats; replaces
    whatever handlers the root logger had."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if as_json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for library in QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(max(logging.WARNING, root.level))


def uvicorn_options(level: LogLevel) -> dict[str, Any]:
    """What `uvicorn.run` needs to log through the root logger rather than configure its
    own handlers and formats."""
    return {"log_config": None, "log_level": level.value}
