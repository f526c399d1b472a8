"""The ``testpilot`` command line.

Exit codes: 0 every selected test passed, 1 test failures, 2 configuration or usage errors,
3 infrastructure errors. Errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from testpilot.errors import ConfigError, TestpilotError, TestsFailed

if TYPE_CHECKING:
    from testpilot.suite import Suite

# The suite model pulls in the test-data stack (SQLAlchemy, Faker): commands import it when they need it,
# so `testpilot select` in zero-config mode starts fast.
SUITE_FILE = "testpilot.yaml"


def load_suite(path: str | Path, **options: Any) -> Suite:
    from testpilot.suite import load_suite as load

    return load(path, **options)


def _home() -> Path:
    # TESTPILOT_HOME without importing pydantic-settings (what get_settings() would return).
    raw = os.environ.get("TESTPILOT_HOME")
    return Path(raw) if raw else Path.home() / ".cache" / "testpilot"


def get_settings() -> Any:
    from testpilot.settings import get_settings as settings

    return settings()


def _fail(exc: TestpilotError) -> int:
    print(f"testpilot: error: {exc}", file=sys.stderr)
    return exc.exit_code


def cmd_validate(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    print(f"{args.suite}: ok ({len(suite.apps)} apps, {len(suite.environments)} environment pools, "
          f"{len(suite.data)} datasets, {len(suite.scenarios)} scenarios)")
    return 0


_SERVER_LINES = {"configured": "Prefect API: {url} (from PREFECT_API_URL)",
                 "reused": "Prefect API: reused the Prefect server at {url}",
                 "started": "Prefect API: started a Prefect server at {url}; it keeps running"}


def run_pipeline(suite_path: str, base: str, head: str, full: bool = False, results: str | None = None,
                 repo: str | None = None) -> int:
    """Run the pipeline flow in this process against the configured (or a started) Prefect API."""
    from testpilot.source import is_worktree, resolve_suite_path

    suite_file = resolve_suite_path(suite_path, repo, Path.cwd())
    suite = load_suite(suite_file)
    from testpilot.selection.git import resolve_ref

    # fail before starting a server; GitError names the ref and says what to do
    for ref in ([] if full else [base]) + ([] if is_worktree(head) else [head]):
        resolve_ref(Path(repo) if repo else suite.root, ref)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")  # silent for 90 s = dead (flows/maintenance.py)
    from flows.server import ensure_api

    api_url, how = ensure_api(get_settings().home)
    print(_SERVER_LINES[how].format(url=api_url))
    from prefect.exceptions import TerminationSignal
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.pipeline import pipeline

    def terminated(signum: int, _frame: object) -> None:
        raise TerminationSignal(signum)

    # Prefect turns SIGTERM into TerminationSignal inside the flow (teardown runs), then re-sends it to
    # the handler it found: this one, so the process ends with a message and 143 instead of dying silently.
    signal.signal(signal.SIGTERM, terminated)
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            state = pipeline(suite=str(suite_file), base=base, head=head, full=full, results_dir=results,
                             repo=repo, return_state=True)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as signalled:  # Prefect's TerminationSignal (SIGTERM) is a BaseException
        if isinstance(signalled, Exception) or not hasattr(signalled, "signal"):
            raise
        return _interrupted(signalled)
    ui = api_url.removesuffix("/api")
    run_id = state.state_details.flow_run_id
    print(f"Flow run: {ui}/runs/flow-run/{run_id}")
    if state.is_completed():
        summary = cast(dict[str, Any], state.result())
        print("\n".join(summary.get("notes", [])))
        print(f"PASSED: {summary['tests']} test(s); reports in {summary['results_dir']}")
        return 0
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, TestsFailed):
        _print_failures(Path(exc.results_dir) / "report.json")
    if isinstance(exc, TestpilotError):
        return _fail(exc)
    print(f"testpilot: error: run ended {state.name}: {state.message}", file=sys.stderr)
    return 3


def _print_failures(report_path: Path) -> None:
    """The tested commit and the failing tests with their owners, from the run's report.json."""
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return
    print("\n".join(report.get("notes", [])))
    for f in report.get("failures", []):
        print(f"FAILED {f['app']}::{f['node_id']} (owner: {f.get('owner') or '-'}, {f.get('category', '')})")


def _interrupted(exc: BaseException) -> int:
    from flows.interruption import LAST, interrupted_message

    print(interrupted_message(exc, LAST), file=sys.stderr)
    return 128 + int(getattr(exc, "signal", 2))


def cmd_run(args: argparse.Namespace) -> int:
    try:
        return run_pipeline(args.suite, args.base, args.head, args.full, args.results, args.repo)
    except KeyboardInterrupt as exc:
        return _interrupted(exc)


def cmd_ci(args: argparse.Namespace) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.ci import run_ci

    return run_ci(args.deployment, args.param, results=Path(args.results) if args.results else None,
                  as_json=args.json, timeout=args.timeout, resolve_refs=not args.refs_on_worker)


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    return run_demo(keep=args.keep)


def _suite_or_none(path: str) -> Suite | None:
    """Zero-config mode: without a suite file the repository root is one app."""
    return load_suite(path) if Path(path).exists() else None


def cmd_select(args: argparse.Namespace) -> int:
    from testpilot.selection import format_selection, select_tests, write_selection_json

    suite = _suite_or_none(args.suite)
    repo = Path(args.repo).resolve()
    selection = select_tests(repo, args.base, args.head, suite, budget=args.budget, confidence=args.confidence,
                             cache_dir=_home() / "selection-cache", record_store=_home())
    if args.output:
        write_selection_json(selection, args.output)
    print(format_selection(selection, args.format, app=args.app))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from testpilot.selection import explain_test

    suite = _suite_or_none(args.suite)
    explanation = explain_test(Path(args.repo).resolve(), args.test, args.base, args.head, suite, app=args.app,
                               cache_dir=_home() / "selection-cache", record_store=_home())
    if explanation.status == "unknown":  # a usage error like any unknown name: the table's 2, on stderr
        print(f"testpilot: error: {explanation.text}", file=sys.stderr)
        return 2
    print(explanation.text)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from testpilot.selection.recording import record_repo

    extra = list(args.pytest_args or [])
    if extra[:1] == ["--"]:
        extra = extra[1:]
    where, part, code = record_repo(Path(args.repo), _home(), python=args.python, pytest_args=extra)
    print(f"recorded {len(part.tests)} test(s) at {part.commit[:12]} (pytest exit code {code}): {where}")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from testpilot.graph import render_graph

    print(render_graph(load_suite(args.suite), impact=args.impact, fmt=args.format))
    return 0


def _with_api() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")
    from flows.server import ensure_api

    ensure_api(get_settings().home)


def cmd_failures(args: argparse.Namespace) -> int:
    _with_api()
    from flows.maintenance import failures_of_run
    from testpilot.failures import render_text

    print(render_text(failures_of_run(args.run)))
    return 0


def cmd_triage(args: argparse.Namespace) -> int:
    _with_api()
    from flows.triage import triage
    from tasks.triage import load_decisions
    from testpilot.triage import Decision, record

    name = args.suite_name or load_suite(args.suite, check_paths=False).name
    if args.cluster is None:
        for cluster, d in load_decisions(name).items():
            print(f"{cluster}: category={d.get('category') or '-'} status={d.get('status')} note={d.get('note') or '-'}")
        return 0
    record({}, Decision(cluster=args.cluster, category=args.category, defect_type=args.defect_type,
                        status=args.status, note=args.note))  # a bad decision fails here, in one line
    state = triage(suite=name, cluster=args.cluster, category=args.category, defect_type=args.defect_type,
                   status=args.status, note=args.note, by=os.environ.get("USER", ""), return_state=True)
    print(f"{name}: cluster {args.cluster}: {state.result()}")  # raises the ConfigError of a bad decision
    return 0


def cmd_analyse(args: argparse.Namespace) -> int:
    from testpilot.failures.files import analyse_files, dump, read_codeowners

    suite = _suite_or_none(args.suite)
    changed: list[str] = []
    repo = Path(args.repo).resolve() if args.repo else (suite.root if suite else None)
    if args.base:
        from testpilot.selection.git import changed_files, repo_root

        root = repo_root(repo or Path.cwd())
        changed = [c.path for c in changed_files(root, args.base, args.head)]
        repo = root
    analysis = analyse_files(args.junit, reruns=args.rerun or [], history=args.history or [],
                             config=suite.failures if suite else None, changed_files=changed,
                             codeowners=read_codeowners(repo) if repo else "", app=args.app or "",
                             run_id=", ".join(Path(j).name for j in args.junit)[:80])
    text = dump(analysis, args.format)
    if args.output:
        Path(args.output).write_text(dump(analysis, "json") + "\n")
    print(text)
    return 0


def cmd_data_gc(args: argparse.Namespace) -> int:
    _with_api()
    from blocks.database import server_urls
    from flows.maintenance import run_is_finished, sweep_dead_runs
    from testpilot.environments.databases import gc_databases
    from testpilot.testdata import gc

    urls = list(args.url or []) + server_urls()
    if args.suite and Path(args.suite).exists():
        suite = load_suite(args.suite, check_paths=False)
        urls += [svc.url for env in suite.environments.values() for svc in env.services.values() if svc.url]
    swept = sweep_dead_runs()  # a kill -9'd run is Running until declared dead: then it is over, like the rest
    print(f"dead runs marked Crashed: {len(swept['crashed'])}; leftovers removed: {len(swept['removed'])}")
    if not urls:
        print("no database server to clean (pass --url, save a DatabaseServer block, or set "
              "TESTPILOT_POSTGRES_URL / TESTPILOT_MYSQL_URL)")
    for url in dict.fromkeys(urls):
        dropped = gc(url, run_is_finished) + gc_databases(url, run_is_finished)
        print(f"{url.split('@')[-1]}: dropped {len(dropped)} namespace(s){': ' if dropped else ''}{', '.join(dropped)}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("testpilot")
    except PackageNotFoundError:  # run from a source folder that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="testpilot", description="Test orchestration on Prefect.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the pipeline for a change")
    p.add_argument("--suite", default=SUITE_FILE)
    p.add_argument("--base", default="HEAD~1")
    p.add_argument("--head", default="HEAD", help="the commit to test (written out for the run, whatever the "
                   "checkout holds); WORKTREE tests the working tree as it is")
    p.add_argument("--repo", default=None, help="the clone refs resolve in; a relative --suite is relative to it")
    p.add_argument("--full", action="store_true", help="run every test, ignoring the diff")
    p.add_argument("--results", default=None, help="folder for junit.xml and report.json "
                   "(default: $TESTPILOT_HOME/results/<run>)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("ci", help="run a deployment for CI: readable log, exit 0/1/2/3, junit.xml downloaded")
    p.add_argument("--deployment", default="testpilot-pipeline/pipeline", help="flow-name/deployment-name")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a deployment parameter, e.g. -p base=origin/main -p head=$GITHUB_SHA (repeatable)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout (the log goes to stderr)")
    p.add_argument("--results", default=None,
                   help="folder for junit.xml and report.json (default $TESTPILOT_HOME/ci-results/<run id>)")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds (exit 3)")
    p.add_argument("--refs-on-worker", action="store_true",
                   help="send base/head as given; by default refs this folder's clone knows go as their commits")
    p.set_defaults(func=cmd_ci)
    p = sub.add_parser("validate", help="check a suite file")
    p.add_argument("--suite", default=SUITE_FILE)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("demo", help="run the example suite on a change that breaks one test")
    p.add_argument("--keep", action="store_true", help="keep the temporary repository")
    p.set_defaults(func=cmd_demo)
    for name, func, text in (("select", cmd_select, "which tests a change affects, and why"),
                             ("explain", cmd_explain, "why one test was selected or skipped")):
        p = sub.add_parser(name, help=text)
        if name == "explain":
            p.add_argument("test", help="a test id, e.g. tests/test_cart.py::test_total")
        p.add_argument("--base", default="HEAD~1")
        p.add_argument("--head", default=None, help="default: the working tree")
        p.add_argument("--suite", default=SUITE_FILE, help="without this file the repository is one app")
        p.add_argument("--repo", default=".")
        p.add_argument("--app", default=None)
        if name == "select":
            p.add_argument("--format", choices=["text", "json", "pytest-args"], default="text")
            p.add_argument("--budget", default=None, help="time budget, e.g. 10m")
            p.add_argument("--confidence", type=float, default=None, help="e.g. 90")
            p.add_argument("--output", default=None, help="also write selection.json here")
        p.set_defaults(func=func)
    p = sub.add_parser("record", help="run the suite once, recording what each test uses (for select)")
    p.add_argument("--repo", default=".")
    p.add_argument("--python", default=None, help="interpreter (default: the project's .venv, else this one)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: arguments for pytest")
    p.set_defaults(func=cmd_record)
    p = sub.add_parser("graph", help="show the backlink graph, or what a change to a node affects")
    p.add_argument("--suite", default=SUITE_FILE)
    p.add_argument("--impact", metavar="NODE", help="e.g. payment-service, env:integration, data:users")
    p.add_argument("--format", choices=["text", "mermaid", "dot", "json"], default="text")
    p.set_defaults(func=cmd_graph)
    p = sub.add_parser("failures", help="show the failure clusters of a past run")
    p.add_argument("--run", required=True, metavar="RUN_ID", help="the flow run id")
    p.set_defaults(func=cmd_failures)
    p = sub.add_parser("triage", help="re-categorise a failure cluster or mark it known/flaky; later runs apply it")
    p.add_argument("cluster", nargs="?", help="cluster id from the run summary (omit to list decisions)")
    p.add_argument("--suite", default=SUITE_FILE)
    p.add_argument("--suite-name", default=None, help="the suite's name, instead of reading --suite")
    p.add_argument("--category", default="", help="category to use instead of the computed one")
    p.add_argument("--defect-type", default="")
    p.add_argument("--status", choices=["open", "known", "flaky"], default="open")
    p.add_argument("--note", default="", help="why, e.g. an issue link")
    p.set_defaults(func=cmd_triage)
    p = sub.add_parser("analyse", help="categorise and cluster the failures in JUnit files")
    p.add_argument("junit", nargs="+", metavar="JUNIT", help="JUnit XML files (pytest, Jest, Surefire, Go...)")
    p.add_argument("--rerun", nargs="+", metavar="JUNIT", help="JUnit files of automatic re-runs of the failures")
    p.add_argument("--history", nargs="+", metavar="JUNIT", help="JUnit files of earlier runs, oldest first")
    p.add_argument("--suite", default=SUITE_FILE, help="its failures section (categories, routing) is used")
    p.add_argument("--repo", default=None, help="repository for CODEOWNERS and the diff (default: the suite's)")
    p.add_argument("--base", default=None, help="with --head: files changed between them are suspects")
    p.add_argument("--head", default=None, help="default: the working tree")
    p.add_argument("--app", default=None, help="app name to put on the results")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--output", default=None, help="also write the JSON answer to this file")
    p.set_defaults(func=cmd_analyse)
    p = sub.add_parser("data", help="test data maintenance")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("gc", help="drop data left by runs that Prefect says are over")
    p.add_argument("--url", action="append", help="database server URL (repeatable)")
    p.add_argument("--suite", default=SUITE_FILE)
    p.set_defaults(func=cmd_data_gc)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse prints its own usage line
        return 2 if exc.code else 0
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return _fail(exc)
    except TestpilotError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        print("testpilot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
