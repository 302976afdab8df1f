"""``ephemera dashboard``: a read-only web page of the runs ledger.

Runs (state, workspace, trigger, duration, cost, VM heartbeat), each run's timeline as
a picture (the SVG of ``ephemera runs show --svg``), its cost, activities, the action
invocations that named it and its logs (followed while it is open), and a banner for
anything still up or needing a person. Server-rendered (:mod:`.server`); no script.
"""

from __future__ import annotations

import os
import sys


def add_arguments(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=os.environ.get("EPHEMERA_DASHBOARD_TOKEN"),
                   help="the token pages need (default $EPHEMERA_DASHBOARD_TOKEN; made up when binding beyond loopback)")


def cmd_dashboard(args) -> int:
    from ephemera.cli.dashboard.server import DashboardServer
    from ephemera.context import Context

    server = DashboardServer(Context(args.config), args.host, args.port, args.token)
    print(f"Ephemera dashboard at {server.url} (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    print("dashboard stopped", file=sys.stderr)
    return 0
