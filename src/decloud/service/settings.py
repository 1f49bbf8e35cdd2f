"""Settings of a decloud service: one TOML config file, overridden by environment variables.

Every service (market, scheduler, result store, SMS) is configured the same way, so that a
devnet writes one file for all of them and a container changes one value without a file.
The file has one table per service (`[market]`, `[scheduler]`); the environment variable
`DECLOUD_<SERVICE>_<FIELD>` overrides a field of that table. Unknown keys are refused, so a
misspelt setting is an error instead of a silently ignored line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIG_FILE_VARIABLE = "DECLOUD_CONFIG"
"""Names the config file when the command line does not."""


class SettingsError(ValueError):
    """The config file or the environment holds a value the service cannot use."""


class ServiceSettings(BaseModel):
    """What every decloud service needs; each service extends it with its own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = Field(
        description="SQLAlchemy URL: sqlite:///path (the default) or postgresql://user@host/db"
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on")
    port: int = Field(ge=0, le=65535, description="Port of the HTTP API (0: any free port)")
    max_body_bytes: int = Field(
        default=64 * 1024, gt=0, description="Larger request bodies are refused with 413"
    )


S = TypeVar("S", bound=ServiceSettings)


def load_settings(
    model: type[S],
    section: str,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> S:
    """The settings of service `section`: defaults, then the file's table, then the
    environment. The file is `config_file`, else the one `DECLOUD_CONFIG` names, else none."""
    environ = os.environ if environ is None else environ
    path = config_file or (
        Path(environ[CONFIG_FILE_VARIABLE]) if environ.get(CONFIG_FILE_VARIABLE) else None
    )
    values: dict[str, object] = dict(_file_section(path, section)) if path else {}
    prefix = f"DECLOUD_{section.upper()}_"
    values.update(
        {
            name: environ[prefix + name.upper()]
            for name in model.model_fields
            if prefix + name.upper() in environ
        }
    )
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise SettingsError(
            f"[{section}] settings (file {path or 'none'}, variables {prefix}*): {problems}"
        ) from error


def _file_section(path: Path, section: str) -> Mapping[str, object]:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"config file {path}: {error}") from error
    table = document.get(section, {})
    if not isinstance(table, dict):
        raise SettingsError(f"config file {path}: [{section}] must be a table")
    return table
