"""Errors as RFC 9457 problem details, with a message a person can act on.

Every refusal of a decloud service answers `application/problem+json`: an HTTP status, a
`rule` that names the rule the request broke (stable, for programs: `signature.invalid`,
`funds.insufficient`), and a `detail` sentence for people. Handlers installed here turn
FastAPI's own errors (invalid JSON, schema violations, unknown routes) and unexpected
exceptions into the same shape; an unexpected exception never leaks its text.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    """One invalid part of a request."""

    location: str = Field(description="Where: body.order.volume, query.limit, ...")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem: why a request was refused."""

    type: str = Field(description="URN of the rule: urn:decloud:problem:<rule>")
    title: str
    status: int
    detail: str = Field(description="What went wrong and, where possible, what to do")
    rule: str = Field(description="The rule the request broke, e.g. signature.invalid")
    errors: list[FieldProblem] = Field(default_factory=list)


class ProblemError(Exception):
    """Raise it anywhere in a request to refuse it with a problem-details answer."""

    def __init__(self, status: int, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.rule = rule
        self.detail = detail


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entry documenting problem answers with these statuses."""
    return {status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}} for status in statuses}


def problem_details(
    status: int, rule: str, detail: str, errors: list[FieldProblem] | None = None
) -> Problem:
    """The problem a refusal answers; also for answers that carry several (a batch)."""
    return Problem(
        type=f"urn:decloud:problem:{rule}",
        title=_title(status),
        status=status,
        detail=detail,
        rule=rule,
        errors=errors or [],
    )


def problem_response(
    status: int, rule: str, detail: str, errors: list[FieldProblem] | None = None
) -> JSONResponse:
    problem = problem_details(status, rule, detail, errors)
    return JSONResponse(
        problem.model_dump(mode="json"), status_code=status, media_type=PROBLEM_MEDIA_TYPE
    )


def install_problem_handlers(app: FastAPI, *, max_body_bytes: int) -> None:
    """Answer every error of `app` as a problem, and refuse bodies over `max_body_bytes`."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_invalid_request)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)


async def _on_problem(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ProblemError)
    return problem_response(error.status, error.rule, error.detail)


async def _on_invalid_request(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        FieldProblem(location=".".join(str(part) for part in e["loc"]), message=str(e["msg"]))
        for e in error.errors()
    ]
    if any(e["type"] == "json_invalid" for e in error.errors()):
        return problem_response(
            400, "request.malformed_json", "the body is not valid JSON", problems
        )
    summary = "; ".join(f"{p.location}: {p.message}" for p in problems)
    return problem_response(422, "request.invalid", f"invalid request: {summary}", problems)


async def _on_http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    return problem_response(error.status_code, f"http.{error.status_code}", str(error.detail))


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    # The text of an unexpected error may hold anything (URLs with passwords, SQL): it goes
    # to the log, never to the client.
    _log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(500, "internal", "internal error; the service log says more")


class BodySizeLimit:
    """Refuses request bodies larger than `max_bytes` with 413, before they are read whole:
    by their Content-Length, and by counting when the body is streamed without one.

    A streamed body that grows too large is cut off while the app reads it; the app then
    fails in its own way (FastAPI answers 400), and that answer is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        received = 0
        cut_off = False

        async def counted() -> Message:
            nonlocal received, cut_off
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                cut_off = True
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not cut_off:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._too_large(scope, receive, send)

        await self.app(scope, counted, guarded)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body exceeds {self.max_bytes} bytes"
        await problem_response(413, "request.too_large", detail)(scope, receive, send)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
