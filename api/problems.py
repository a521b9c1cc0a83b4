"""Errors as `application/problem+json` (RFC 9457): `title`, `status`, `detail`, and for 422
`errors: [{field, message}]`. Every error the API answers goes through here."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import Response
from pydantic import BaseModel, ValidationError

MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str
    message: str


class ProblemBody(BaseModel):
    """The body of every error answer (for the OpenAPI document)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return problem_response(self.status, self.detail, self.title, self.errors, self.headers)


def problem_response(
    status: int,
    detail: str,
    title: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [e.model_dump() for e in errors]
    return Response(
        json.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {})
    )


def field_errors(errors: Sequence[Mapping[str, Any]], skip: int = 0) -> list[FieldError]:
    """Pydantic's error list as `{field, message}`; `skip` drops leading location parts
    (FastAPI's `body`)."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())][skip:]
        field = ".".join(loc) or "body"
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        elif err.get("type") == "missing":
            message = "required field is missing"
        else:
            message = str(err.get("msg", "invalid"))
        out.append(FieldError(field=field, message=message))
    return out


def invalid(exc: ValidationError, what: str) -> Problem:
    errors = field_errors(exc.errors())
    detail = f"{what}: " + "; ".join(f"{e.field}: {e.message}" for e in errors)
    return Problem(422, detail, title="Invalid request", errors=errors)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemBody, "content": {MEDIA_TYPE: {}}}
    for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
