"""`chatbot serve`: warm the models, then run the web app under uvicorn."""

from __future__ import annotations

import argparse
import sys


def cmd_serve(args: argparse.Namespace) -> int:
    from chatbot.builder import build_pipeline
    from chatbot.cli import config_from_args

    config = config_from_args(args)
    host = args.host or config.server.host
    port = args.port or config.server.port
    pipeline = build_pipeline(config, lambda m: print(m, file=sys.stderr), speech=True, vision=True)
    import uvicorn

    from chatbot.work_meter import ServerClock
    from ui.app import STALE_BEATS, create_app, operator_password, uvicorn_options

    app = create_app(pipeline, config)  # first: a database that cannot be written stops here, one line, exit 2
    print("warming up the models…", file=sys.stderr, flush=True)
    pipeline.warm_up()
    if not operator_password(config):
        print(
            "operator panel locked: set CHATBOT_OPERATOR_PASSWORD to open /operator and /api/analytics", file=sys.stderr
        )
    print(
        f"chat at http://{host}:{port}/  ·  operators at http://{host}:{port}/operator  ·  API at /api",
        file=sys.stderr,
        flush=True,
    )
    beat_s = config.server.heartbeat_s
    clock = ServerClock(  # the hours it is up (the serving bill); a dead replica's unanswered turns go to a person
        pipeline.store, pipeline.llm.device, beat_s, lambda: pipeline.recover(STALE_BEATS * beat_s, at_start=False)
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            await super().shutdown(sockets)
            clock.stop()  # here: after it, uvicorn re-raises a captured SIGTERM, which skips any `finally`

    clock.start()
    pipeline.server_run = clock.run_id  # its customer messages name it: while it beats, no replica flags them
    from chatbot.index_watch import watcher

    watcher(config, pipeline).start()  # a version another replica or the worker published is loaded live
    options = uvicorn_options(config)
    Server(uvicorn.Config(app, host=host, port=port, log_level="warning", **options)).run()
    return 0


def register(sub) -> None:
    from chatbot.cli import add_common

    p = sub.add_parser("serve", help="run the browser app (customer chat, operator panel) and the REST API")
    p.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default from config: 7860)")
    add_common(p, index=True, db=True)
    p.set_defaults(func=cmd_serve)
