"""The ``testpilot`` command line.

Exit codes: 0 every selected test passed, 1 test failures, 2 configuration or usage errors,
3 infrastructure errors. Errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, cast

from testpilot.errors import ConfigError, TestpilotError
from testpilot.settings import get_settings
from testpilot.suite import SUITE_FILE, Suite, load_suite


def _fail(exc: TestpilotError) -> int:
    print(f"testpilot: error: {exc}", file=sys.stderr)
    return exc.exit_code


def cmd_validate(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    print(f"{args.suite}: ok ({len(suite.apps)} apps, {len(suite.environments)} environment pools, "
          f"{len(suite.data)} datasets, {len(suite.scenarios)} scenarios)")
    return 0


def run_pipeline(suite_path: str, base: str, head: str, full: bool = False, results: str | None = None) -> int:
    """Run the pipeline flow in this process against the configured (or a started) Prefect API."""
    suite = load_suite(suite_path)
    if not full:  # fail before starting a server; GitError names the ref and says what to do
        from testpilot.selection.git import resolve_ref

        for ref in (base, head):
            resolve_ref(suite.root, ref)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.server import ensure_api

    api_url, started = ensure_api(get_settings().home)
    print(f"Prefect API: {api_url}" + (" (local server started; it keeps running)" if started else ""))
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.pipeline import pipeline

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        state = pipeline(suite=str(Path(suite_path).resolve()), base=base, head=head, full=full,
                         results_dir=results, return_state=True)
    ui = api_url.removesuffix("/api")
    run_id = state.state_details.flow_run_id
    print(f"Flow run: {ui}/runs/flow-run/{run_id}")
    if state.is_completed():
        summary = cast(dict[str, Any], state.result())
        print(f"PASSED: {summary['tests']} test(s); reports in {summary['results_dir']}")
        return 0
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, TestpilotError):
        return _fail(exc)
    print(f"testpilot: error: run ended {state.name}: {state.message}", file=sys.stderr)
    return 3


def cmd_run(args: argparse.Namespace) -> int:
    return run_pipeline(args.suite, args.base, args.head, args.full, args.results)


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
                             cache_dir=get_settings().home / "selection-cache")
    if args.output:
        write_selection_json(selection, args.output)
    print(format_selection(selection, args.format, app=args.app))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from testpilot.selection import explain_test

    suite = _suite_or_none(args.suite)
    explanation = explain_test(Path(args.repo).resolve(), args.test, args.base, args.head, suite, app=args.app,
                               cache_dir=get_settings().home / "selection-cache")
    print(explanation.text)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from testpilot.graph import render_graph

    print(render_graph(load_suite(args.suite), impact=args.impact, fmt=args.format))
    return 0


def _with_api() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.server import ensure_api

    ensure_api(get_settings().home)


def cmd_failures(args: argparse.Namespace) -> int:
    _with_api()
    from flows.maintenance import failures_of_run
    from testpilot.failures import render_text

    print(render_text(failures_of_run(args.run)))
    return 0


def cmd_data_gc(args: argparse.Namespace) -> int:
    _with_api()
    from flows.maintenance import run_is_finished
    from testpilot.environments.databases import gc_databases
    from testpilot.testdata import gc

    settings = get_settings()
    urls = list(args.url or []) + [u for u in (settings.postgres_url, settings.mysql_url) if u]
    if args.suite and Path(args.suite).exists():
        suite = load_suite(args.suite, check_paths=False)
        urls += [svc.url for env in suite.environments.values() for svc in env.services.values() if svc.url]
    if not urls:
        raise ConfigError("no database server to clean", field="--url",
                          hint="pass --url, or set TESTPILOT_POSTGRES_URL / TESTPILOT_MYSQL_URL")
    for url in dict.fromkeys(urls):
        dropped = gc(url, run_is_finished) + gc_databases(url, run_is_finished)
        print(f"{url.split('@')[-1]}: dropped {len(dropped)} namespace(s){': ' if dropped else ''}{', '.join(dropped)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="testpilot", description="Test orchestration on Prefect.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the pipeline for a change")
    p.add_argument("--suite", default=SUITE_FILE)
    p.add_argument("--base", default="HEAD~1")
    p.add_argument("--head", default="HEAD")
    p.add_argument("--full", action="store_true", help="run every test, ignoring the diff")
    p.add_argument("--results", default=None, help="folder for junit.xml and report.json")
    p.set_defaults(func=cmd_run)
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
    p = sub.add_parser("graph", help="show the backlink graph, or what a change to a node affects")
    p.add_argument("--suite", default=SUITE_FILE)
    p.add_argument("--impact", metavar="NODE", help="e.g. payment-service, env:integration, data:users")
    p.add_argument("--format", choices=["text", "mermaid", "dot", "json"], default="text")
    p.set_defaults(func=cmd_graph)
    p = sub.add_parser("failures", help="show the failure clusters of a past run")
    p.add_argument("--run", required=True, metavar="RUN_ID", help="the flow run id")
    p.set_defaults(func=cmd_failures)
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
        print("testpilot: interrupted; environments were torn down", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
