"""Infrastructure every decloud service shares: settings, database and migrations, errors
as problem details, chain cursors in SQL, and signed requests."""

from decloud.service.auth import RequestAuth, RequestVerifier, ServiceRequest, sign_request
from decloud.service.cursors import SqlCursorStore
from decloud.service.db import Database, request_session
from decloud.service.migrations import Migration, MigrationError, migrate
from decloud.service.problems import (
    Problem,
    ProblemError,
    install_problem_handlers,
    problem_responses,
)
from decloud.service.settings import ServiceSettings, SettingsError, load_settings
from decloud.service.tables import SERVICE_MIGRATIONS

__all__ = [
    "SERVICE_MIGRATIONS",
    "Database",
    "Migration",
    "MigrationError",
    "Problem",
    "ProblemError",
    "RequestAuth",
    "RequestVerifier",
    "ServiceRequest",
    "ServiceSettings",
    "SettingsError",
    "SqlCursorStore",
    "install_problem_handlers",
    "load_settings",
    "migrate",
    "problem_responses",
    "request_session",
    "sign_request",
]
