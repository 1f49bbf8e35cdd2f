"""Service logs: one JSON object per line with `--json`, text otherwise, and the HTTP
clients' per-request lines kept out."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from decloud.service.logs import LogLevel, configure_logging


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_json_logs_are_one_object_per_line_with_time_level_logger_and_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(as_json=True)

    logging.getLogger("decloud.scheduler").info("task %s finalized", "0x12")
    try:
        raise ValueError("the node said no")
    except ValueError:
        logging.getLogger("decloud.worker").exception("contribution failed")

    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["level"] == "info" and first["logger"] == "decloud.scheduler"
    assert first["message"] == "task 0x12 finalized"
    assert first["time"].endswith("+00:00")
    assert second["level"] == "error" and "ValueError: the node said no" in second["exception"]


def test_text_logs_name_the_level_and_the_logger(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level=LogLevel.WARNING)

    logging.getLogger("decloud.market").info("not shown below the level")
    logging.getLogger("decloud.market").warning("chain sync behind")

    assert (
        capsys.readouterr()
        .err.splitlines()[0]
        .endswith("WARNING decloud.market: chain sync behind")
    )


def test_the_http_clients_request_lines_stay_out_but_their_warnings_do_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(as_json=True, level=LogLevel.DEBUG)

    logging.getLogger("httpx").info('HTTP Request: POST http://127.0.0.1:1/v1/ping "200 OK"')
    logging.getLogger("httpx").warning("connection pool full")

    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "connection pool full"
