"""`llmforge`: one subcommand per stage, `run` for the whole chain, plus status, runs, chat, dashboard and server.

Runs are recorded on the persistent local Prefect server (`llmforge.local_server`), started
by the first command that needs it; `--ephemeral` uses a temporary one instead.

Exit codes: 0 success, 1 the run failed, 2 a usage or configuration error (nothing was
started), 130 interrupted. Every failure ends as one line on stderr; `--verbose` (or
LLMFORGE_DEBUG=1) adds the traceback and Prefect's own error logs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any

from llmforge.stages import STAGE_ORDER, STAGES

DEFAULT_WORKDIR = "runs/default"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmforge", description="Web crawl in, chat model out: every stage a Prefect flow.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, force: bool = True, as_json: bool = True) -> None:
        p.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"work directory (default: {DEFAULT_WORKDIR})")
        p.add_argument("--config", default=None, help="YAML file with one section per stage")
        if force:
            p.add_argument("--force", action="store_true", help="re-run even if up to date (dependents re-run too)")
        if as_json:
            p.add_argument("--json", action="store_true", help="print one JSON object as the last line on stdout")
        if force:  # the commands that run flows
            p.add_argument("--ephemeral", action="store_true",
                           help="record this run on a temporary Prefect server that ends with the command, "
                           "not on the persistent local one (LLMFORGE_EPHEMERAL=1 does the same)")

    run = sub.add_parser("run", help="run every stage in order, skipping those that are up to date")
    common(run)
    run.add_argument("--source", default=None, help="data source (overrides the config's data.source)")
    run.add_argument("--task-runner", choices=["process", "dask"], default=None, help="where the data stage's shard tasks run")
    run.add_argument("--dask-address", default=None, help="scheduler of an existing Dask cluster, e.g. tcp://HOST:8786")
    _pretrain_flags(run)
    for name in STAGE_ORDER:
        p = sub.add_parser(name, help=STAGES[name].help)
        common(p)
        if name == "pretrain":
            p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last saved state")
            _pretrain_flags(p)
        if name == "data":
            p.add_argument("--source", default=None,
                           help="'sample', a WARC file, a directory of them, a glob, or cc:CC-MAIN-YYYY-WW")
            p.add_argument("--task-runner", choices=["process", "dask"], default=None,
                           help="where shard tasks run: local processes (default) or a Dask cluster")
            p.add_argument("--dask-address", default=None, help="scheduler of an existing Dask cluster, e.g. tcp://HOST:8786")
            p.add_argument("--rebuild", action="store_true",
                           help="start the dataset over: read every source file into a new version 1 (same as --force)")
    status = sub.add_parser("status", help="show each stage as up to date / stale / missing, and why")
    common(status, force=False)
    chat = sub.add_parser("chat", help="talk to the most post-trained checkpoint")
    common(chat, force=False, as_json=False)
    chat.add_argument("--prompt", default=None, help="print one reply and exit (default: interactive)")
    chat.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the latest in the work dir)")
    tokens = sub.add_parser("tokens", help="show how the trained tokenizer splits a text (terminal + HTML)")
    tokens.add_argument("text", help="the text to tokenize")
    tokens.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"work directory (default: {DEFAULT_WORKDIR})")
    tokens.add_argument("--html", default=None, help="where to write the HTML view (default: WORKDIR/reports/tokens.html)")
    tokens.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="colour the token boundaries (auto: only on a terminal)")
    export = sub.add_parser("export", help="write the latest checkpoint in a standard format")
    export.add_argument("--format", choices=["hf"], default="hf", help="hf: a Hugging Face Llama directory")
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"work directory (default: {DEFAULT_WORKDIR})")
    export.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the latest in the work dir)")
    serve = sub.add_parser("serve", help="web chat page and OpenAI-compatible API for the latest checkpoint")
    serve.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"work directory (default: {DEFAULT_WORKDIR})")
    serve.add_argument("--config", default=None, help="YAML file with one section per stage (chat: sampling defaults)")
    serve.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the latest in the work dir)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: local only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
        help="also answer requests addressed to this host name (repeatable; without a port: any port). "
        "Always answered: localhost, 127.0.0.1 and [::1] on --port, and --host when it is a specific address",
    )  # fmt: skip
    serve.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN",
        help="let pages of this other site use the API from the browser, e.g. http://localhost:3000 (repeatable)",
    )  # fmt: skip
    dash = sub.add_parser("dashboard", help="the Prefect UI over the local run history, the deployments and a worker")
    dash.add_argument("--host", default="127.0.0.1", help="address of the local server, when this starts it")
    dash.add_argument("--port", type=int, default=None, help="its port, when this starts it (default: 4200 if free)")
    runs = sub.add_parser("runs", help="the work directory's recent runs, from the Prefect server's history")
    runs.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"work directory (default: {DEFAULT_WORKDIR})")
    runs.add_argument("--limit", type=int, default=20, help="how many runs, newest first (default: 20)")
    runs.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    server = sub.add_parser("server", help="the persistent local Prefect server that keeps the run history")
    server.add_argument("action", choices=["status", "start", "stop"])
    server.add_argument("--port", type=int, default=None, help="start: the port (default: 4200 if free)")
    server.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    config = sub.add_parser("config", help="check a config file without running anything")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="print the merged, validated configuration as YAML (exit 2 if invalid)")
    check.add_argument("file", nargs="?", default=None, help="YAML file with one section per stage (default: none)")
    for command in (*sub.choices.values(), check):
        command.add_argument("-v", "--verbose", action="store_true",
                             help="on failure, show the traceback and Prefect's error logs")
    return parser


def _pretrain_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nproc", type=int, default=None,
                   help="data-parallel training processes, launched with torchrun (GPUs on CUDA, gloo on CPU)")
    p.add_argument("--preset", choices=["tiny", "small", "gpt2"], default=None, help="model size preset")
    p.add_argument("--depth", type=int, default=None, help="model depth; width and heads follow from it")


def _load_config(args: argparse.Namespace) -> Any:
    from llmforge.config import load_pipeline_config

    data: dict[str, Any] = {}
    if getattr(args, "source", None):
        data["source"] = args.source
    if getattr(args, "dask_address", None):
        data.update(task_runner="dask", dask_address=args.dask_address)
    if getattr(args, "task_runner", None):
        data["task_runner"] = args.task_runner
    pretrain = {key: getattr(args, key) for key in ("nproc", "preset", "depth") if getattr(args, key, None) is not None}
    return load_pipeline_config(args.config, {"data": data, "pretrain": pretrain})


def _print_outcome(result: dict[str, Any], as_json: bool) -> None:
    stages = result["stages"] if "stages" in result else [result]
    for outcome in stages:
        metrics = ", ".join(f"{k}={v}" for k, v in outcome["metrics"].items() if not isinstance(v, dict))
        print(f"{outcome['stage']:>9}: {outcome['status']:<7} {metrics}", file=sys.stderr if as_json else sys.stdout)
    if as_json:
        sys.stdout.flush()
        print(json.dumps(result, default=str))


def _run_stages(args: argparse.Namespace, argv: list[str], verbose: bool) -> int:
    """Check the config and the source here, then run the stage in its own process group
    (llmforge/interrupt.py), which is this same command again, supervised."""
    from llmforge.interrupt import is_supervised_child, run_supervised, stop_quietly_on_interrupt

    config = _load_config(args)
    if args.command in ("run", "data"):
        from tasks.data.sources import check_source

        check_source(config.data)
    if not is_supervised_child():
        _check_not_running(args)
        return run_supervised(argv)
    stop_quietly_on_interrupt(verbose)
    _print_outcome(_run_flow(args, config, verbose), args.json)
    return 0


def _check_not_running(args: argparse.Namespace) -> None:
    """A stage already running on this work directory is a one-line error here, before any
    Prefect start-up; the run itself holds the same lock for its lifetime (StageRun)."""
    from llmforge.workdir_lock import StageLock

    for name in STAGE_ORDER if args.command == "run" else (args.command,):
        StageLock.acquire(Path(args.workdir), name).release()


def _run_flow(args: argparse.Namespace, config: Any, verbose: bool) -> dict[str, Any]:
    from llmforge.prefect_env import configure_prefect, quiet_run_tracebacks, stop_temporary_server

    configure_prefect(ephemeral=args.ephemeral)
    if not verbose:
        quiet_run_tracebacks()
    try:
        return _call_flow(args, config)
    finally:
        stop_temporary_server()


def _call_flow(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    from prefect import tags

    from llmforge.runs import workdir_tag

    with tags(workdir_tag(args.workdir)):  # how `llmforge runs` finds this work directory's runs
        if args.command == "run":
            from flows.pipeline import pipeline_flow

            return pipeline_flow(workdir=args.workdir, config=config, force=list(STAGE_ORDER) if args.force else [])
        stage_flow = STAGES[args.command].load_flow()
        extra = {"resume": True} if getattr(args, "resume", False) else {}
        force = args.force or getattr(args, "rebuild", False)
        return stage_flow(workdir=args.workdir, config=getattr(config, args.command), force=force, **extra)


def _status(args: argparse.Namespace) -> dict[str, Any]:
    from llmforge.manifest import Freshness, check_freshness

    config = _load_config(args)
    report: dict[str, Freshness] = {}
    for name in STAGE_ORDER:
        freshness, _, _ = check_freshness(STAGES[name], Path(args.workdir), getattr(config, name))
        for upstream in STAGES[name].upstream:
            if report[upstream].state != "up to date" and freshness.state == "up to date":
                freshness = Freshness("stale", [f"upstream {upstream} is {report[upstream].state}"])
        report[name] = freshness
    for name, freshness in report.items():
        why = "; ".join(freshness.reasons)
        print(f"{name:>9}: {freshness.state:<10} {why}", file=sys.stderr if args.json else sys.stdout)
    versions = _print_versions(Path(args.workdir), sys.stderr if args.json else sys.stdout)
    result = {"stages": [{"stage": n, "state": f.state, "reasons": f.reasons} for n, f in report.items()],
              "data_versions": versions}
    if args.json:
        print(json.dumps(result))
    return result


def _print_versions(workdir: Path, out: Any) -> list[dict[str, Any]]:
    """The dataset's versions as a table under the stages (nothing when there are none)."""
    from tasks.data.versions import read_records, summary_row

    rows = [summary_row(record) for record in read_records(workdir / "data")[0]]
    if rows:
        columns = list(rows[0])
        widths = [max(len(column), *(len(str(row[column])) for row in rows)) for column in columns]
        print("\ndataset versions:", file=out)
        print("  ".join(c.rjust(w) for c, w in zip(columns, widths)), file=out)
        for row in rows:
            print("  ".join(str(row[c]).rjust(w) for c, w in zip(columns, widths)), file=out)
    return rows


def _chat(args: argparse.Namespace) -> None:
    from tasks.chat.session import ChatSession, latest_checkpoint

    config = _load_config(args)
    checkpoint = Path(args.checkpoint) if args.checkpoint else latest_checkpoint(Path(args.workdir))
    session = ChatSession(checkpoint, Path(args.workdir) / "tokenizer" / "tokenizer.json", config.chat)
    if args.prompt is not None:
        session.reply(args.prompt, on_text=lambda delta: print(delta, end="", flush=True))
        print()
        return
    print(f"chatting with {checkpoint} (empty line or Ctrl-D to quit)")
    while True:
        try:
            message = input("you> ").strip()
        except EOFError:
            break
        if not message:
            break
        print("llm> ", end="", flush=True)
        session.reply(message, on_text=lambda delta: print(delta, end="", flush=True))
        print()


def _tokens(args: argparse.Namespace) -> None:
    from llmforge import atomic
    from model.token_view import render_html, render_terminal
    from model.tokenizer import BpeTokenizer

    path = Path(args.workdir) / "tokenizer" / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path}: run `llmforge tokenize` first")
    tokenizer = BpeTokenizer.from_file(path)
    view = render_terminal(tokenizer, args.text)
    if args.color == "never" or (args.color == "auto" and not sys.stdout.isatty()):
        view = re.sub(r"\x1b\[[0-9;]*m", "", view)
    sys.stdout.write(view)
    html = Path(args.html) if args.html else Path(args.workdir) / "reports" / "tokens.html"
    atomic.write_text(html, render_html(tokenizer, args.text))
    print(f"HTML view: {html}", file=sys.stderr)


def _export(args: argparse.Namespace) -> None:
    from model.checkpoint import load_checkpoint
    from model.export_hf import export_hf
    from tasks.chat.session import latest_checkpoint

    checkpoint = Path(args.checkpoint) if args.checkpoint else latest_checkpoint(Path(args.workdir))
    model, _ = load_checkpoint(checkpoint)
    export_hf(model, Path(args.workdir) / "tokenizer" / "tokenizer.json", Path(args.out))
    print(f"exported {checkpoint} to {args.out} (loads with transformers' AutoModelForCausalLM and AutoTokenizer)")


def _serve(args: argparse.Namespace) -> None:
    from tasks.chat.access import AccessPolicy

    # Before importing torch and loading the model: a mistyped host or origin fails at once.
    access = AccessPolicy.build(args.host, args.allowed_host, args.cors_origin)

    from tasks.chat.session import latest_checkpoint
    from tasks.chat.checkpoint_backend import CheckpointBackend
    from tasks.chat.serve import run_server
    from tasks.chat.validation import ServeLimits

    config = _load_config(args)
    checkpoint = Path(args.checkpoint) if args.checkpoint else latest_checkpoint(Path(args.workdir))
    backend = CheckpointBackend(checkpoint, Path(args.workdir) / "tokenizer" / "tokenizer.json", top_k=config.chat.top_k)
    print(f"serving {checkpoint} on http://{args.host}:{args.port}/ (OpenAI API under /v1)", file=sys.stderr)
    run_server(backend, host=args.host, port=args.port,
               limits=ServeLimits(default_max_tokens=config.chat.max_new_tokens,
                                  default_temperature=config.chat.temperature),
               access=access)


def _config_check(args: argparse.Namespace) -> int:
    import yaml

    from llmforge.config import load_pipeline_config

    config = load_pipeline_config(args.file)
    sys.stdout.write(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    return 0


def _runs(args: argparse.Namespace) -> None:
    from llmforge import local_server
    from llmforge.runs import format_rows, recent_runs, rows_as_json

    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1 (got {args.limit})")
    api = os.environ.get("PREFECT_API_URL") or local_server.ensure_server()[0].api_url
    rows = recent_runs(api, Path(args.workdir), args.limit)
    print(rows_as_json(rows) if args.json else format_rows(rows))


def _server(args: argparse.Namespace) -> None:
    from llmforge import local_server

    if args.action == "stop":
        stopped = local_server.stop_server()
        print(f"stopped the server at {stopped.ui_url} (pid {stopped.pid})" if stopped else "no server was running")
        return
    if args.action == "start":
        record, started = local_server.ensure_server(port=args.port)
        if not started and args.port is not None and record.port != args.port:
            print(f"llmforge server: note: already running on port {record.port}, not {args.port}", file=sys.stderr)
    status = local_server.server_status()
    if args.json:
        print(json.dumps(status))
    else:
        for key, value in status.items():
            print(f"{key:>10}: {value}")


def _dispatch(args: argparse.Namespace, argv: list[str], verbose: bool) -> int:
    commands = {"status": _status, "chat": _chat, "tokens": _tokens, "export": _export, "serve": _serve,
                "server": _server, "runs": _runs}
    if args.command == "dashboard":
        from llmforge.dashboard import serve_dashboard

        return serve_dashboard(args.host, args.port)
    if args.command == "config":
        return _config_check(args)
    if args.command in commands:
        commands[args.command](args)
        return 0
    return _run_stages(args, argv, verbose)


def _one_line(err: BaseException) -> str:
    """The exception as one line; library errors of unexpected kinds keep their type's name."""
    text = " ".join(str(err).split())
    ours = type(err).__module__.split(".")[0] in ("llmforge", "tasks", "flows", "model")
    if ours or isinstance(err, (OSError, ValueError)):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text} (--verbose shows where)" if text else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    from llmforge.config_errors import ConfigError
    from llmforge.interrupt import is_supervised_child

    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    verbose = args.verbose or os.environ.get("LLMFORGE_DEBUG", "") not in ("", "0")
    try:
        return _dispatch(args, argv, verbose)
    except KeyboardInterrupt:
        if not is_supervised_child():  # the supervisor says it once
            print("llmforge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # the CLI's job is a clear message; the traceback only on request
        if verbose:
            traceback.print_exc()
        print(f"llmforge {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, ConfigError) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
