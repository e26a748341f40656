"""``publiccore serve`` (the ingest service) and ``publiccore probes add | list | revoke``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
from typing import TYPE_CHECKING

from publiccore import config as cfg
from publiccore.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from aiohttp import web

    from publiccore.store import Store

_COUNTRY = re.compile(r"^[A-Z]{2}$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the collector's ingest service (HTTP)")
    _common(serve)
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help="address to listen on (default: serve.listen; port 0 picks one)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="processes sharing the socket, each with its own store connection "
                            "(default 1; rate limits and counters are then per process)")
    serve.set_defaults(func=_serve)

    probes = sub.add_parser("probes", help="register, list and revoke probes (collector admin)")
    actions = probes.add_subparsers(dest="probes_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register a probe; prints its id and token once")
    _common(add)
    add.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. NL")
    add.add_argument("--asn", required=True, type=_asn, help="the probe's network's AS number")
    add.add_argument("--name", default="", help="a note for operators (not published)")
    add.add_argument("--json", action="store_true", help='print {"id", "token"} as JSON')
    add.set_defaults(func=_probes_add)
    listing = actions.add_parser("list", help="list registered probes (never their tokens)")
    _common(listing)
    listing.add_argument("--json", action="store_true", help="print JSON Lines")
    listing.set_defaults(func=_probes_list)
    revoke = actions.add_parser("revoke", help="refuse a probe's token from now on")
    _common(revoke)
    revoke.add_argument("probe_id", metavar="ID")
    revoke.set_defaults(func=_probes_revoke)


def _common(parser: argparse.ArgumentParser) -> None:
    # default=SUPPRESS keeps a global ``publiccore --config F …`` from being overwritten.
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="TOML configuration file")
    parser.add_argument("--store", metavar="PATH", help="SQLite store (default: store.path)")


def _asn(text: str) -> int:
    try:
        value = int(text.upper().removeprefix("AS"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an AS number: {text!r}") from None
    if not 0 < value < 2**32:
        raise argparse.ArgumentTypeError("AS number out of range")
    return value


def _open_store(args: argparse.Namespace, settings: cfg.Settings) -> Store:
    from publiccore.store import open_store

    if args.store:
        return open_store(args.store)
    return open_store(settings.store.path, settings.store.url)


def _serve(args: argparse.Namespace) -> int:
    from collectors import ingest

    settings = cfg.load(args.config)
    host, port = _parse_listen(args.listen or settings.serve.listen)
    if args.workers > 1:
        return _serve_workers(args, settings, host, port)
    store = _open_store(args, settings)
    try:
        app = ingest.make_app(store, settings)
        asyncio.run(serve_forever(app, host, port))
    finally:
        store.close()
    return 0


def _serve_workers(args: argparse.Namespace, settings: cfg.Settings, host: str, port: int
                   ) -> int:
    """Fork ``--workers`` processes sharing one listening socket, each with its own store."""
    import traceback

    from collectors import ingest

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
    sys.stdout.write(f"listening on http://{shown}:{bound[1]} ({args.workers} workers)\n")
    sys.stdout.flush()
    children: list[int] = []
    # SIGTERM/SIGINT stay blocked until each process has its handlers: a stop request that
    # arrives while a worker is still starting waits for it instead of killing it half-way.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:  # a worker: serve until SIGTERM, never return into the parent's code
            code = 1
            try:
                store = _open_store(args, settings)
                try:
                    asyncio.run(serve_forever(ingest.make_app(store, settings), sock=sock))
                    code = 0
                finally:
                    store.close()
            except Exception:  # a worker's last words; the parent reports the exit status
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    sock.close()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    status = 0
    for child in children:
        _pid, wait_status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(wait_status) != 0:
            status = 1
    return status


def _probes_add(args: argparse.Namespace) -> int:
    from collectors.ingest import new_probe_id, new_token, token_hash
    from publiccore.store import ProbeRegistration

    settings = cfg.load(args.config)
    country = args.country.upper()
    if not _COUNTRY.match(country):
        raise ConfigError(f"--country must be an ISO 3166-1 alpha-2 code, got {args.country!r}")
    token = new_token()
    probe = ProbeRegistration(id=new_probe_id(), country=country, asn=args.asn,
                              token_hash=token_hash(token), name=args.name)
    store = _open_store(args, settings)
    try:
        store.add_probe(probe)
    finally:
        store.close()
    if args.json:
        sys.stdout.write(json.dumps({"id": probe.id, "token": token}) + "\n")
        return 0
    sys.stdout.write(
        f"probe {probe.id} registered ({country}, AS{args.asn})\n"
        f"token {token}\n"
        "The token is shown only this once. Put both in the probe's configuration:\n\n"
        f'[probe]\nid = "{probe.id}"\ncountry = "{country}"\nasn = {args.asn}\n'
        f'token = "{token}"\ncollector_url = "https://collector.example"\n')
    return 0


def _probes_list(args: argparse.Namespace) -> int:
    settings = cfg.load(args.config)
    store = _open_store(args, settings)
    try:
        probes = store.list_probes()
    finally:
        store.close()
    if args.json:
        for p in probes:
            sys.stdout.write(json.dumps({
                "id": p.id, "name": p.name, "country": p.country, "asn": p.asn,
                "created": p.created.isoformat() if p.created else None,
                "revoked": p.revoked.isoformat() if p.revoked else None}) + "\n")
        return 0
    if not probes:
        sys.stdout.write("no probes registered\n")
        return 0
    sys.stdout.write(f"{'id':<14} {'country':<7} {'asn':>10}  {'created':<20} {'state':<8} name\n")
    for p in probes:
        created = p.created.strftime("%Y-%m-%d %H:%M:%S") if p.created else "-"
        state = "revoked" if p.revoked else "active"
        sys.stdout.write(f"{p.id:<14} {p.country:<7} {p.asn:>10}  {created:<20} {state:<8} "
                         f"{p.name}\n")
    return 0


def _probes_revoke(args: argparse.Namespace) -> int:
    settings = cfg.load(args.config)
    store = _open_store(args, settings)
    try:
        revoked = store.revoke_probe(args.probe_id)
    finally:
        store.close()
    if not revoked:
        raise StoreError(f"no active probe {args.probe_id!r}")
    sys.stdout.write(f"probe {args.probe_id} revoked\n")
    return 0


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"listen address must be HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not 0 <= int(port) < 65536:
        raise ConfigError(f"port out of range in {text!r}")
    return host, int(port)


async def serve_forever(app: web.Application, host: str = "", port: int = 0, *,
                        sock: socket.socket | None = None) -> None:
    """Serve ``app`` on host:port (or a listening ``sock``) until SIGTERM/SIGINT.

    With host:port, prints ``listening on http://HOST:PORT`` once ready.
    """
    from aiohttp import web
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    # No access log: the collector never records or exposes a probe's address.
    # auto_decompress off: collectors.ingest decompresses gzip itself, capped (no gzip bombs).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
    await runner.setup()
    try:
        if sock is not None:
            await web.SockSite(runner, sock).start()
            await stop.wait()
            return
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        for address in runner.addresses:
            shown = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
            sys.stdout.write(f"listening on http://{shown}:{address[1]}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()
