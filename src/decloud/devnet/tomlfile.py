"""Write TOML, the format of decloud's config file.

Python reads TOML (`tomllib`) but cannot write it, and the config file the devnet writes
needs only tables of strings, numbers, booleans, lists of those, and sub-tables: a writer
for that subset is shorter than a new dependency.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

Scalar = str | int | float | bool | Path
Value = Scalar | Sequence[Scalar] | Mapping[str, "Value"]
Table = Mapping[str, Value]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dumps(document: Mapping[str, Table]) -> str:
    """The document as TOML: one `[table]` per entry, sub-tables as `[table.sub]`."""
    return "\n".join(_table([name], table) for name, table in document.items())


def _table(path: list[str], table: Table) -> str:
    lines = [f"[{'.'.join(_key(part) for part in path)}]"]
    lines += [
        f"{_key(key)} = {_value(value)}"
        for key, value in table.items()
        if not isinstance(value, Mapping)
    ]
    text = "\n".join(lines) + "\n"
    for key, value in table.items():
        if isinstance(value, Mapping):
            text += "\n" + _table([*path, key], value)
    return text


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML has no place for {value} here")
        return repr(value)
    if isinstance(value, str | Path):
        return _string(str(value))
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def _string(text: str) -> str:
    # JSON's escapes are TOML's, except that TOML also wants DEL escaped; and TOML has no
    # surrogate pairs, so characters beyond ASCII are written as themselves (UTF-8).
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
