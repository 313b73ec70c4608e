"""``reactive serve``: the HTTP API and dashboard over a state folder, or the app on a
cloud host run locally (``--host aws-local`` / ``azure-local``, whose SDKs load only then)."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
from pathlib import Path

from hosts.cli.apps import compile_app, load_app
from hosts.cli.errors import CliError
from hosts.cli.parser import API_KEY_ENV
from hosts.http import create_app, follow_commits
from hosts.http.live import local_inspector
from hosts.local import FolderError, LocalHost

API_KEY_FILE = "api-key"
KEEP_ALIVE = 75  # seconds an idle connection stays open (long polls, clients' pools)


def _api_key(state: Path) -> tuple[str, str]:
    """The key and where it came from: the environment, the folder, or new (then kept in
    the folder, readable by its owner only, so that a restart keeps it)."""
    from_env = os.environ.get(API_KEY_ENV)
    if from_env:
        return from_env, f"from {API_KEY_ENV}"
    path = state / API_KEY_FILE
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        return kept, f"from {path}"
    key = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key, f"new, kept in {path}"


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: uvicorn's copy of a passed socket loses the protocol
    # number that asyncio checks before setting TCP_NODELAY itself, and without it every
    # response waits for a delayed ACK (about 40 ms)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.host == "aws-local":
        from hosts.aws.local import cli_serve

        served: int = cli_serve(args)
        return served
    if args.host == "azure-local":
        from hosts.azure.local import serve_command

        app = load_app(args.app)
        compile_app(app)
        azure: int = serve_command(app, args.partitions or 4, port=args.port)
        return azure
    if args.state is None:
        raise CliError("serve --host local needs --state DIR (the state folder)")
    app = load_app(args.app)
    compile_app(app)
    state = Path(args.state)
    if state.exists() and not state.is_dir():
        raise CliError(f"--state {args.state} is a file, not a folder")
    sock = _bind(args.port)
    try:
        host = LocalHost(app, partitions=args.partitions, state_dir=state)
    except FolderError as exc:
        sock.close()
        raise CliError(str(exc)) from None
    try:
        if args.no_auth_loopback:
            key, origin = None, ""
        else:
            key, origin = _api_key(state)
        host.start_background()  # before client(): a driven host's client does not drive
        history, describe = local_inspector(host)
        api = create_app(host.schema, host.client(), host.status, api_key=key,
                         history=history, describe=describe, batch=host.batch,
                         backlog=host.inbox.backlog, submit=host.submit)
        follow_commits(api, host.status, host.on_commit)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        print(f"serving {app.name} ({host.count} partitions, state in {state}) at {url}/",
              flush=True)
        if key is None:
            print("API key: none (--no-auth-loopback: loopback peers only)", flush=True)
        else:
            print(f"API key: {key} ({origin})", flush=True)
            print(f"dashboard: {url}/#key={key}", flush=True)
        config = uvicorn.Config(
            api, log_level="warning" if args.quiet else "info", lifespan="off",
            timeout_graceful_shutdown=5, timeout_keep_alive=KEEP_ALIVE,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        host.close()
        sock.close()
    return 0
