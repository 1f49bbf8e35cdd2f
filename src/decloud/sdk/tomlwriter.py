"""Write TOML documents: the standard library reads TOML (`tomllib`) but cannot write it.

Enough of TOML for a config file: tables and sub-tables, strings, integers, floats, booleans,
dates, arrays and inline tables inside arrays. Strings are written as JSON strings, which are
valid TOML basic strings (same escapes).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps(document: Mapping[str, Any]) -> str:
    """The TOML text of `document`: top-level values first, then one table per mapping."""
    return "\n".join(_table([], document)).strip() + "\n"


def _table(path: list[str], table: Mapping[str, Any]) -> list[str]:
    values = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    lines = [f"[{'.'.join(_key(part) for part in path)}]"] if path and values else []
    lines += [f"{_key(key)} = {_value(value)}" for key, value in values]
    if lines:
        lines.append("")
    for key, sub_table in tables:
        lines += _table([*path, key], sub_table)
    return lines


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")
