"""Mutation check of the exactly-once code: does the suite notice when a guarantee is broken?

    .venv/bin/python bench/mutations.py                    # every mutation, about 3 minutes
    .venv/bin/python bench/mutations.py --only race-guard  # one (or several) by name
    .venv/bin/python bench/mutations.py --list             # names, targets, tests
    .venv/bin/python bench/mutations.py --check            # each target text still in the code?
    .venv/bin/python bench/mutations.py --source DIR       # mutate another checkout's code

Copies the repository (its git-tracked and untracked, not ignored files) to a temporary
directory once. Then, for each mutation, it replaces one exact piece of source text in the copy,
runs the tests that claim to cover that code (`pytest -x`, in the copy), and puts the text back.
A mutation is *caught* when the tests fail, *survived* when they pass. First, the same tests run
on the unmutated copy: a selection that fails without any mutation would make every mutation
look caught. The exit status is non-zero if any mutation survived or a run went wrong.

Each target text must occur exactly once in its file; when the code moves, `--check` (and every
run) fails naming the mutation, so the list is kept in step with the code rather than silently
testing nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STORE_TESTS = ("tests/test_store.py", "tests/test_readside_projector.py")
# The suite's check that every target text below is in the code: under a mutation it fails by
# construction, so it is never part of a run.
SELF_CHECK = "tests/test_store.py::test_every_mutation_of_bench_mutations_still_finds_its_target"
DECIDER_TESTS = ("tests/test_domain_decider.py",)
GROUP_TESTS = ("tests/test_store_group_commit.py",)


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    old: str  # exact text, once in the file
    new: str
    why: str  # the guarantee it breaks
    tests: tuple[str, ...] = STORE_TESTS
    # Tests left out of the run because they check the code's text, not its behaviour.
    deselect: tuple[str, ...] = ()


MUTATIONS: tuple[Mutation, ...] = (
    # --- store/schema.py: the append function and the migrations -----------------------------
    Mutation(
        "race-guard",
        "store/schema.py",
        "IF inserted < cardinality(p_seqs) AND EXISTS (",
        "IF false AND EXISTS (",
        "an append whose seq was taken by another writer after its checks is told ok",
    ),
    Mutation(
        "unique-seq",
        "store/schema.py",
        "now(),\n            CONSTRAINT ticket_events_ticket_seq_key UNIQUE (ticket_id, seq)\n",
        "now()\n",
        "two events may hold one (ticket_id, seq)",
        deselect=("tests/test_store.py::test_store_migrate_creates_contract_columns",),
    ),
    Mutation(
        "gap-check",
        "store/schema.py",
        "IF first_seq > 1 AND NOT EXISTS (",
        "IF false AND NOT EXISTS (",
        "a batch starting beyond the next seq is stored, leaving a hole",
    ),
    Mutation(
        "same-event-other-content",
        "store/schema.py",
        "IS DISTINCT FROM (u.event_type, u.payload::jsonb, u.occurred_at))",
        "IS DISTINCT FROM (t.event_type, t.payload, t.occurred_at))",  # never: itself
        "a retry carrying other content than the stored event is taken as already present",
    ),
    Mutation(
        "position-lock-in-function",
        "store/schema.py",
        "IF lock_key IS NOT NULL THEN",
        "IF false THEN",
        "positions are no longer handed out in commit order",
    ),
    Mutation(
        "migration-lock",
        "store/schema.py",
        'await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)',
        "pass",
        "two workers starting at once apply the same migration twice",
    ),
    # --- store/event_store.py ------------------------------------------------------------------
    Mutation(
        "consecutive-seqs",
        "store/event_store.py",
        "if e.seq != first + i:",
        "if False:",
        "a batch with a hole in its seqs reaches the database",
    ),
    Mutation(
        "already-present-count",
        "store/event_store.py",
        "already_present=len(events) - inserted)",
        "already_present=0)",
        "a retried append no longer reports what was already stored",
    ),
    Mutation(
        "position-lock-off",
        "store/event_store.py",
        "POSITION_LOCK: int | None = APPEND_LOCK_KEY",
        "POSITION_LOCK: int | None = None",
        "appends stop taking the position lock",
    ),
    Mutation(
        "read-after-inclusive",
        "store/event_store.py",
        'WHERE global_position > $1"',
        'WHERE global_position >= $1"',
        "a reader resuming at a position reads that event again",
    ),
    # --- group commit: store/schema.py (append_event_batches), store/group_commit.py ----------
    Mutation(
        "group-gap-check",
        "store/schema.py",
        "WHERE f.s > 1 AND NOT EXISTS (",
        "WHERE false AND NOT EXISTS (",
        "a grouped batch starting beyond the next seq is stored, leaving a hole",
        tests=GROUP_TESTS,
    ),
    Mutation(
        "group-clash-check",
        "store/schema.py",
        "IS DISTINCT FROM (u.id, u.t, u.s, u.typ, u.payload::jsonb, u.at)",
        "IS DISTINCT FROM (e.event_id, e.ticket_id, e.seq, e.event_type, e.payload, e.occurred_at)",
        "a grouped batch whose seq or event id is taken is not refused as a conflict",
        tests=GROUP_TESTS,
    ),
    Mutation(
        "group-position-lock",
        "store/schema.py",
        "IF p_lock IS NOT NULL THEN",
        "IF false THEN",
        "a group's positions are no longer handed out in commit order",
        tests=GROUP_TESTS,
    ),
    Mutation(
        "group-race-undo",
        "store/schema.py",
        "IF cardinality(raced) > 0 THEN",
        "IF false THEN",
        "a grouped batch that lost a seq after its checks keeps the rows it did insert",
        tests=GROUP_TESTS,
    ),
    Mutation(
        "group-one-batch-per-ticket",
        "store/group_commit.py",
        "if item.ticket_id in tickets:",
        "if False:",
        "a ticket's next batch joins the group of the batch before it",
        tests=GROUP_TESTS,
    ),
    Mutation(
        "group-skip-cancelled",
        "store/group_commit.py",
        "if item.future.done():  # cancelled while queued",
        "if False:",
        "a caller cancelled while queued is written all the same",
        tests=GROUP_TESTS,
    ),
    Mutation(
        "group-no-split",
        "store/group_commit.py",
        "if len(group) == 1:",
        "if True:",
        "data one batch holds fails every batch of its group",
        tests=GROUP_TESTS,
    ),
    # --- store/projections.py ------------------------------------------------------------------
    Mutation(
        "rows-outside-checkpoint-tx",
        "store/projections.py",
        "        await apply(conn, events, cache)\n",
        "        async with connection(pool) as outside:\n"
        "            await apply(outside, events, cache)\n",
        "read-model rows commit even when their batch's checkpoint rolls back",
    ),
    Mutation(
        "checkpoint-not-locked",
        "store/projections.py",
        '"SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", name',
        '"SELECT position FROM projection_checkpoints WHERE name = $1", name',
        "two projectors may apply the same batch",
    ),
    Mutation(
        "checkpoint-event-count",
        "store/projections.py",
        "events = events + $3,",
        "events = $3,",
        "the checkpoint's count of applied events is lost",
    ),
    Mutation(
        "upsert-keeps-status",
        "store/projections.py",
        "for c in TICKET_COLUMNS[1:])",
        'for c in TICKET_COLUMNS[1:] if c != "status")',
        "a ticket's row keeps the status of its first projection",
    ),
    Mutation(
        "reset-keeps-escalations",
        "store/projections.py",
        'await conn.execute("TRUNCATE tickets, escalations")',
        'await conn.execute("TRUNCATE tickets")',
        "a rebuild applies every escalation a second time",
    ),
    # --- domain/policy.py: what a policy file may say ------------------------------------------
    Mutation(
        "duration-from-a-number",
        "domain/durations.py",
        '    raise ValueError(f"duration must be text',
        '    return timedelta(seconds=value)\n    raise ValueError(f"duration must be text',
        "a bare number (or `true`) in a policy file becomes a duration in seconds",
        tests=("tests/test_domain_policy.py",),
    ),
    Mutation(
        "tier-name-with-space",
        "domain/policy.py",
        '_TIER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")',
        '_TIER_NAME = re.compile(r"^[A-Za-z0-9_ -]{1,32}$")',
        "a tier name may hold a space (the bad-inputs case written for it)",
        tests=("tests/test_bad_inputs.py::test_bad_policy_file_is_refused_naming_the_field",),
    ),
    # --- domain/decider.py ---------------------------------------------------------------------
    Mutation(
        "due-exclusive",
        "domain/decider.py",
        "return due is not None and due <= now",
        "return due is not None and due < now",
        "a deadline fires later than its due time",
        tests=DECIDER_TESTS,
    ),
    Mutation(
        "request-id-replayed",
        "domain/decider.py",
        "if command.request_id and command.request_id in caught_up.request_ids:",
        "if False:",
        "an action retried with its request_id is applied twice",
        tests=DECIDER_TESTS,
    ),
    Mutation(
        "no-catch-up-before-action",
        "domain/decider.py",
        "    due = _tick(state, now)\n",
        "    due: list[ev.EventPayload] = []\n",
        "a late action is decided before the deadlines that passed before it",
        tests=DECIDER_TESTS,
    ),
    Mutation(
        "escalate-to-same-tier",
        "domain/decider.py",
        "elif tiers.index(a.to_tier) <= tiers.index(state.tier):",
        "elif tiers.index(a.to_tier) < tiers.index(state.tier):",
        "an agent may escalate a ticket to the tier it is already in",
        tests=DECIDER_TESTS,
    ),
    Mutation(
        "warning-beside-breach",
        "domain/decider.py",
        "if passed(due) and not passed(sla_due):",
        "if passed(due):",
        "a warning is sent with the breach it should have come before",
        tests=DECIDER_TESTS,
    ),
)


def target_problems(source: Path, mutations: Sequence[Mutation]) -> list[str]:
    """Mutations whose target text is not exactly once in its file (the code moved)."""
    problems = []
    for m in mutations:
        file = source / m.path
        if not file.is_file():
            problems.append(f"{m.name}: {m.path} does not exist")
            continue
        count = file.read_text(encoding="utf-8").count(m.old)
        if count != 1:
            problems.append(f"{m.name}: its target text occurs {count} times in {m.path}")
    return problems


def copy_repository(source: Path, dest: Path) -> None:
    """The files git would commit (tracked, and untracked but not ignored): no .venv, no caches."""
    listed = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = source / rel
        if src.is_file():  # a deleted but still tracked file is listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@dataclass
class Outcome:
    mutation: Mutation
    result: str  # caught, survived, timeout, error
    caught_by: str
    seconds: float
    output: str
    tests: tuple[str, ...]  # what ran


_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def run_tests(
    copy: Path,
    tests: Sequence[str],
    deselect: Sequence[str],
    timeout: float,
    every_failure: bool = False,
) -> tuple[int | None, str, float]:
    """pytest in the copy: (exit status or None on timeout, output, seconds). Stops at the
    first failure unless `every_failure`."""
    first = [] if every_failure else ["-x"]
    command = [sys.executable, "-m", "pytest", *first, "-q", "-p", "no:cacheprovider", *tests]
    for node in (SELF_CHECK, *deselect):
        command += ["--deselect", node]
    # No bytecode: a mutated file and its restored original may share size and mtime second.
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode()
        return None, out, time.monotonic() - start
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def check_imports_from(copy: Path) -> None:
    """The copy's modules must be the ones imported, not the editable install's originals."""
    probe = "import store.schema, domain.decider; print(store.schema.__file__)"
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    where = subprocess.run(
        [sys.executable, "-c", probe], cwd=copy, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"mutations: the copy imports {where}, not its own code; giving up")


def mutate_and_run(
    copy: Path, m: Mutation, timeout: float, tests: Sequence[str] | None = None
) -> Outcome:
    """Run `m.tests` (or `tests`, then reporting every failure) with the mutation applied."""
    file = copy / m.path
    original = file.read_text(encoding="utf-8")
    file.write_text(original.replace(m.old, m.new, 1), encoding="utf-8")
    try:
        code, output, seconds = run_tests(
            copy, tests or m.tests, m.deselect, timeout, every_failure=bool(tests)
        )
    finally:
        file.write_text(original, encoding="utf-8")
    failed = [f.removeprefix("tests/") for f in _FAILED.findall(output)]
    first = ", ".join(failed) if tests else failed[0] if failed else ""
    ran = tuple(tests or m.tests)
    if code is None:
        return Outcome(m, "timeout", "", seconds, output, ran)
    if code == 0:
        return Outcome(m, "survived", "", seconds, output, ran)
    if code == 1:
        return Outcome(m, "caught", first, seconds, output, ran)
    return Outcome(m, "error", f"pytest exit {code}", seconds, output, ran)


def table(outcomes: Sequence[Outcome]) -> str:
    lines = [
        "| mutation | file | tests run | result | failing test | s |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        tests = ", ".join(t.removeprefix("tests/") for t in o.tests)
        result = f"**{o.result}**" if o.result != "caught" else o.result
        lines.append(
            f"| {o.mutation.name} | {o.mutation.path} | {tests} | {result}"
            f" | {o.caught_by} | {o.seconds:.0f} |"
        )
    caught = sum(o.result == "caught" for o in outcomes)
    lines.append("")
    lines.append(f"{caught} of {len(outcomes)} mutations caught.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations only")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument(
        "--check", action="store_true", help="check every target text is in the code, and exit"
    )
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="the checkout to mutate (default: this one)"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per pytest run")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the run of the unmutated tests"
    )
    parser.add_argument("--verbose", action="store_true", help="print pytest's output of each run")
    parser.add_argument(
        "--tests",
        nargs="+",
        metavar="NODE",
        help="run these tests (pytest node ids) instead of each mutation's own, and name every"
        " one that fails: to check that a new test catches a mutation",
    )
    args = parser.parse_args(argv)

    chosen = list(MUTATIONS)
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTATIONS}
        if unknown:
            parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
        chosen = [m for m in MUTATIONS if m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:28} {m.path:22} {' '.join(m.tests)}\n{'':28} breaks: {m.why}")
        return 0
    source = args.source.resolve()
    problems = target_problems(source, chosen)
    if problems:
        print("mutations: the code moved; update MUTATIONS in bench/mutations.py:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 2
    if args.check:
        print(f"mutations: all {len(chosen)} target texts found in {source}")
        return 0

    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repository(source, copy)
        check_imports_from(copy)
        if not args.no_baseline:
            runs = dict.fromkeys(
                (tuple(args.tests) if args.tests else m.tests, m.deselect) for m in chosen
            )
            for tests, deselect in runs:
                code, output, seconds = run_tests(copy, tests, deselect, args.timeout)
                if code != 0:
                    print(output, file=sys.stderr)
                    print(
                        f"mutations: {' '.join(tests)} fail(s) without any mutation"
                        f" (exit {code}); fix that first",
                        file=sys.stderr,
                    )
                    return 2
                print(f"baseline: {' '.join(tests)} pass ({seconds:.0f} s)", flush=True)
        outcomes = []
        for m in chosen:
            outcome = mutate_and_run(copy, m, args.timeout, args.tests)
            print(f"{m.name}: {outcome.result} {outcome.caught_by}", flush=True)
            if args.verbose or outcome.result in ("error", "timeout"):
                print(outcome.output[-4000:], file=sys.stderr)
            outcomes.append(outcome)
    print()
    print(table(outcomes))
    return 0 if all(o.result == "caught" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
