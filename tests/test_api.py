"""The HTTP API on the dev server: every endpoint, its status codes and problem bodies, the
401/403 matrix for static tokens, Idempotency-Key, cursor pagination, health and readiness."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client

from api.app import create_app
from tests.api_support import ApiRig, api_rig, asgi_client, make_api

PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(loop_scope="session")
async def web(dev_env: Any, db_pool: Any, tmp_path: Path) -> AsyncIterator[ApiRig]:
    async with api_rig(dev_env, db_pool, tmp_path) as rig:
        yield rig


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


# --- open ---------------------------------------------------------------------------------------


async def test_open_is_201_then_200_then_409_for_other_input(web: ApiRig) -> None:
    tid, view = await web.open(priority="high")
    assert (view["ticket_id"], view["status"], view["priority"]) == (tid, "new", "high")
    ticket = {"ticket_id": tid, "subject": "Refund not received", "customer_id": "acme"}
    again = await web.http.post(
        "/v1/tickets", json={**ticket, "priority": "high"}, headers=web.auth("max")
    )
    assert again.status_code == 200 and again.json()["opened_at"] == view["opened_at"]
    other = await web.http.post(
        "/v1/tickets", json={**ticket, "subject": "Other"}, headers=web.auth("max")
    )
    assert "subject: 'Other' given" in problem(other, 409)["detail"]


async def test_open_invalid_names_each_field(web: ApiRig) -> None:
    r = await web.http.post(
        "/v1/tickets",
        json={"ticket_id": "bad id!", "customer_id": "acme", "colour": "red"},
        headers=web.auth("max"),
    )
    body = problem(r, 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"ticket_id", "subject", "colour"} <= fields
    assert all(e["message"] for e in body["errors"])


async def test_a_service_opens_only_with_the_right(web: ApiRig) -> None:
    tid, _ = await web.open("bot")
    assert tid
    ticket = {"ticket_id": f"A-{uuid.uuid4().hex[:8]}", "subject": "x", "customer_id": "acme"}
    r = await web.http.post("/v1/tickets", json=ticket, headers=web.auth("ben"))
    assert "may not open" in problem(r, 403)["detail"]


# --- authentication and authorization --------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YW5uOmFubg=="}],
    ids=["no-token", "unknown-token", "not-bearer"],
)
async def test_every_route_but_health_needs_a_token(web: ApiRig, headers: dict[str, str]) -> None:
    for method, path in [
        ("GET", "/v1/tickets"),
        ("GET", "/v1/tickets/T-1"),
        ("GET", "/v1/tickets/T-1/events"),
        ("POST", "/v1/tickets"),
        ("POST", "/v1/tickets/T-1/actions/respond"),
    ]:
        r = await web.http.request(method, path, headers=headers, json={})
        assert problem(r, 401)["detail"]
        assert r.headers["www-authenticate"] == "Bearer"
    assert (await web.http.get("/healthz")).status_code == 200


async def test_unknown_paths_and_methods_are_problems(web: ApiRig) -> None:
    assert "no such path '/v2/nothing'" in problem(await web.http.get("/v2/nothing"), 404)["detail"]
    r = await web.http.delete("/v1/tickets", headers=web.auth("max"))
    assert "DELETE is not allowed" in problem(r, 405)["detail"] and "POST" in r.headers["allow"]


async def test_forbidden_matrix(web: ApiRig) -> None:
    tid, _ = await web.open()
    act = f"/v1/tickets/{tid}/actions"
    # an agent acting as another
    r = await web.http.post(f"{act}/assign", json={"agent_id": "max"}, headers=web.auth("ann"))
    assert "cannot act as agent 'max'" in problem(r, 403)["detail"]
    # a service acting as an agent (named, or by an action that needs one)
    r = await web.http.post(f"{act}/assign", json={"agent_id": "ann"}, headers=web.auth("bot"))
    assert "service bot cannot assign as an agent" in problem(r, 403)["detail"]
    r = await web.http.post(f"{act}/respond", json={}, headers=web.auth("bot"))
    problem(r, 403)
    # a token whose `may` does not list the action
    r = await web.http.post(f"{act}/assign", json={}, headers=web.auth("ben"))
    assert "agent ben may not assign" in problem(r, 403)["detail"]
    # what the service may do, it does
    r = await web.http.post(
        f"{act}/customer_replied", json={"message": "hello"}, headers=web.auth("bot")
    )
    assert r.status_code == 200, r.text


# --- actions ------------------------------------------------------------------------------------


async def test_actions_answer_the_view_and_refusals_are_409_verbatim(web: ApiRig) -> None:
    tid, _ = await web.open()
    act = f"/v1/tickets/{tid}/actions"
    r = await web.http.post(f"{act}/assign", headers=web.auth("ann"))  # no body: claim
    assert (r.status_code, r.json()["assignee"], r.json()["status"]) == (200, "ann", "open")
    r = await web.http.post(
        f"{act}/request_escalation", json={"reason": "needs L2"}, headers=web.auth("ann")
    )
    assert r.json()["tier"] == "L2"
    # ann works L1 only: the workflow's directory check refuses, verbatim
    r = await web.http.post(f"{act}/respond", json={"message": "hi"}, headers=web.auth("ann"))
    assert "agent ann may not act on ticket" in problem(r, 409)["detail"]
    r = await web.http.post(
        f"{act}/request_escalation", json={"reason": "up", "to_tier": "L1"}, headers=web.auth("max")
    )
    assert "L1" in problem(r, 409)["detail"]


async def test_action_errors_404_and_422(web: ApiRig) -> None:
    tid, _ = await web.open()
    r = await web.http.post(f"/v1/tickets/{tid}/actions/dance", json={}, headers=web.auth("max"))
    assert "unknown action 'dance'" in problem(r, 404)["detail"]
    r = await web.http.post(
        "/v1/tickets/NOPE-404/actions/respond", json={}, headers=web.auth("max")
    )
    assert "not found" in problem(r, 404)["detail"]
    r = await web.http.post(
        f"/v1/tickets/{tid}/actions/request_escalation", json={}, headers=web.auth("max")
    )
    assert [e["field"] for e in problem(r, 422)["errors"]] == ["reason"]
    r = await web.http.post(
        f"/v1/tickets/{tid}/actions/change_priority",
        json={"priority": "meh", "extra": 1},
        headers=web.auth("max"),
    )
    assert {e["field"] for e in problem(r, 422)["errors"]} == {"priority", "extra"}
    r = await web.http.post(
        f"/v1/tickets/{tid}/actions/respond",
        content=b"[1, 2]",
        headers={**web.auth("max"), "content-type": "application/json"},
    )
    problem(r, 422)
    r = await web.http.post(
        f"/v1/tickets/{tid}/actions/respond",
        content=b"{not json",
        headers={**web.auth("max"), "content-type": "application/json"},
    )
    problem(r, 400)


async def test_idempotency_key_is_the_request_id(web: ApiRig) -> None:
    tid, _ = await web.open()
    url = f"/v1/tickets/{tid}/actions/respond"
    headers = {**web.auth("max"), "Idempotency-Key": "reply-1"}
    first = await web.http.post(url, json={"message": "on it"}, headers=headers)
    second = await web.http.post(url, json={"message": "on it"}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["version"] == second.json()["version"]
    events = (await web.http.get(f"/v1/tickets/{tid}/events", headers=web.auth("max"))).json()
    assert [e["event_type"] for e in events].count("AgentResponded") == 1
    r = await web.http.post(url, json={"request_id": "other"}, headers=headers)
    assert "Idempotency-Key" in problem(r, 422)["detail"]


# --- reading ------------------------------------------------------------------------------------


async def test_get_and_events(web: ApiRig) -> None:
    tid, view = await web.open()
    r = await web.http.get(f"/v1/tickets/{tid}", headers=web.auth("ann"))
    assert r.status_code == 200 and r.json()["ticket_id"] == tid
    assert r.json()["sla"]["first_response_due"] == view["sla"]["first_response_due"]
    problem(await web.http.get("/v1/tickets/NOPE-1", headers=web.auth("ann")), 404)
    await web.http.post(f"/v1/tickets/{tid}/actions/assign", headers=web.auth("ann"))
    events = (await web.http.get(f"/v1/tickets/{tid}/events", headers=web.auth("ann"))).json()
    assert [e["seq"] for e in events] == [1, 2]
    assert [e["event_type"] for e in events] == ["TicketOpened", "TicketAssigned"]
    problem(await web.http.get("/v1/tickets/NOPE-1/events", headers=web.auth("ann")), 404)


async def test_list_filters_and_cursor_pages(web: ApiRig) -> None:
    ids = set()
    for _ in range(3):
        tid, _ = await web.open()
        r = await web.http.post(f"/v1/tickets/{tid}/actions/assign", headers=web.auth(web.pager))
        assert r.status_code == 200, r.text
        ids.add(tid)
    params = {"assignee": web.pager, "status": "open", "tier": "L1", "limit": "2"}
    page: dict[str, Any] = {"items": []}
    for _ in range(100):  # visibility lags writes briefly
        page = (await web.http.get("/v1/tickets", params=params, headers=web.auth("ann"))).json()
        if page["next_cursor"]:
            rest = await web.http.get(
                "/v1/tickets",
                params={**params, "cursor": page["next_cursor"]},
                headers=web.auth("ann"),
            )
            seen = {i["ticket_id"] for i in page["items"] + rest.json()["items"]}
            if seen == ids:
                assert len(page["items"]) == 2 and rest.json()["next_cursor"] is None
                break
        await asyncio.sleep(0.1)
    else:
        pytest.fail(f"never listed all three: {page}")
    none = await web.http.get(
        "/v1/tickets", params={**params, "breached": "true"}, headers=web.auth("ann")
    )
    assert none.json() == {"items": [], "next_cursor": None}
    problem(await web.http.get("/v1/tickets?limit=0", headers=web.auth("ann")), 422)
    problem(await web.http.get("/v1/tickets?cursor=%%%", headers=web.auth("ann")), 422)
    problem(await web.http.get("/v1/tickets?due_before=soon", headers=web.auth("ann")), 422)


# --- documents and health -------------------------------------------------------------------


async def test_openapi_document_is_served_and_its_refs_resolve(web: ApiRig) -> None:
    doc = (await web.http.get("/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/v1/tickets",
        "/v1/tickets/{ticket_id}",
        "/v1/tickets/{ticket_id}/actions/{action}",
        "/v1/tickets/{ticket_id}/events",
        "/healthz",
        "/readyz",
    } <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert {"OpenTicket", "TicketView", "RequestEscalation", "ProblemBody"} <= set(schemas)

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    page = await web.http.get("/docs")
    assert page.status_code == 200 and "/v1/tickets/{ticket_id}/actions/{action}" in page.text
    assert "cdn" not in page.text.lower() and "<script>" not in page.text


async def test_health_and_readiness(web: ApiRig, db_pool: Any) -> None:
    assert (await web.http.get("/healthz")).json() == {"status": "ok"}
    ready = await web.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["postgres"] == "ok"


async def test_readiness_fails_when_temporal_or_postgres_is_unreachable(
    web: ApiRig, db_pool: Any
) -> None:
    # A lazy client on a port nobody listens on; a database that cannot be reached.
    dead = await Client.connect("127.0.0.1:1", lazy=True)

    async def no_database() -> Any:
        raise OSError("connection refused")

    api = make_api(dead, "tq", db_pool, None, None)
    api.database = no_database
    async with asgi_client(create_app(api)) as http:
        body = problem(await http.get("/readyz"), 503)
        assert "temporal: unreachable" in body["detail"]
        assert "postgres: unreachable" in body["detail"]
    good = make_api(web.client, "tq", db_pool, None, None)
    good.database = no_database
    async with asgi_client(create_app(good)) as http:
        body = problem(await http.get("/readyz"), 503)
        assert "temporal" not in body["detail"] and "postgres: unreachable" in body["detail"]


async def test_security_headers_on_every_answer(web: ApiRig) -> None:
    for r in (await web.http.get("/healthz"), await web.http.get("/v1/tickets")):
        csp = r.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "script-src 'self'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_my_queue_is_mine_then_my_teams_unassigned_by_nearest_due(web: ApiRig) -> None:
    normal, _ = await web.open(priority="normal")
    urgent, _ = await web.open(priority="urgent")  # due sooner than normal
    mine, _ = await web.open(priority="low")  # due last, but assigned to ann: first
    elsewhere, _ = await web.open(priority="urgent")  # moved to L2: not ann's team
    r = await web.http.post(f"/v1/tickets/{mine}/actions/assign", headers=web.auth("ann"))
    assert r.status_code == 200
    r = await web.http.post(
        f"/v1/tickets/{elsewhere}/actions/request_escalation",
        json={"reason": "L2's"},
        headers=web.auth("max"),
    )
    assert r.json()["tier"] == "L2"
    ann = await web.api.auth.token("ann-token-1")
    wanted = [mine, urgent, normal]
    ids: list[str] = []
    for _ in range(100):  # visibility lags writes briefly
        rows = await web.api.queue(ann)
        ids = [r.ticket_id for r in rows if r.ticket_id in {*wanted, elsewhere}]
        if ids == wanted:
            break
        await asyncio.sleep(0.1)
    assert ids == wanted


def test_console_forms_cover_every_action_and_split_lists() -> None:
    from api.console import action_forms, form_payload
    from domain.commands import ACTIONS

    forms = {f.action: f for f in action_forms()}
    assert set(forms) == set(ACTIONS)
    assert {f.name for f in forms["request_escalation"].fields} == {"reason", "to_tier"}
    assert all(f.name not in ("agent_id", "request_id") for f in forms["assign"].fields)
    assert {f.kind for f in forms["tag"].fields} == {"list"}
    payload = form_payload("tag", {"add": "vip, refund  urgent", "remove": "", "x": "1"})
    assert payload == {"add": ["vip", "refund", "urgent"], "x": "1"}
    assert form_payload("respond", {"message": "  ", "request_id": "r-1"}) == {}
