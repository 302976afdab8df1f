"""``ephemera dashboard``: a read-only web page of the runs ledger.

Runs (state, workspace, trigger, duration, cost, VM heartbeat), each run's timeline as
a picture (the SVG of ``ephemera runs show --svg``), its cost, activities, the action
invocations that named it and its logs (followed while it is open), and a banner for
anything still up or needing a person. Server-rendered (:mod:`.server`); no script.
"""

from __future__ import annotations

import argparse
import sys

from ephemera.errors import ParamError


def add_arguments(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--token-file",
        help="a file whose first line is the token pages need (default: $EPHEMERA_DASHBOARD_TOKEN; "
        "made up and printed when binding beyond loopback); at least 16 bytes",
    )
    p.add_argument("--token", help=argparse.SUPPRESS)  # refused: a token on the command line shows in `ps`
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name the dashboard answers to (e.g. the name of a reverse proxy); repeatable",
    )
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate chain (with --tls-key)")
    p.add_argument("--tls-key", help="the PEM private key of --tls-cert")


def cmd_dashboard(args) -> int:
    from ephemera.cli.dashboard.access import TOKEN_ENV, readable_by_others, read_token
    from ephemera.cli.dashboard.server import DashboardServer
    from ephemera.context import Context

    if args.token is not None:
        raise ParamError(
            "--token",
            "a token on the command line is shown to every user of this machine by `ps`",
            f"set ${TOKEN_ENV} or write it into a file only you can read and give --token-file FILE",
        )
    token, source = read_token(args.token_file)
    if readable_by_others(args.token_file):
        print(f"warning: {args.token_file} can be read by other users; chmod 600 it", file=sys.stderr)
    server = DashboardServer(
        Context(args.config),
        args.host,
        args.port,
        token,
        allow_hosts=args.allow_host,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        token_source=source,
    )
    if server.warning:
        print(server.warning, file=sys.stderr)
    print(f"Ephemera dashboard at {server.url} (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    print("dashboard stopped", file=sys.stderr)
    return 0
