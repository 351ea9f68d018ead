"""Serving the API with uvicorn; SIGTERM or Ctrl-C stops it gracefully (event streams end too)."""

from __future__ import annotations

import logging
from types import FrameType

import uvicorn

from clipper.api.app import create_app
from clipper.api.deps import ApiState
from clipper.settings import Settings

#: Seconds a stop waits for requests in flight before cancelling them.
GRACE_SECONDS = 5


class ApiServer(uvicorn.Server):
    """uvicorn's server, telling the app as soon as a stop is asked for: open event streams
    end at once instead of holding the stop for the whole grace period."""

    def __init__(self, config: uvicorn.Config, state: ApiState) -> None:
        super().__init__(config)
        self.api_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.api_state.stopping.set()
        super().handle_exit(sig, frame)
        # A stop asked for is a clean end (exit 0, like Clipper's other processes); uvicorn
        # would raise the signal again once it has stopped, ending the process by it.
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()

    def stop(self) -> None:
        """Stop from another thread (tests), as a signal would."""
        self.api_state.stopping.set()
        self.should_exit = True


def make_server(settings: Settings, *, host: str = "127.0.0.1", port: int | None = None,
                log_level: str | None = None) -> ApiServer:
    """A server for the API on `host:port` (default CLIPPER_API_PORT); `.run()` serves until
    SIGINT/SIGTERM (in the main thread) or `.stop()`."""
    app = create_app(settings)
    config = uvicorn.Config(app, host=host, port=port or settings.api_port,
                            log_level=(log_level or settings.log_level).lower(),
                            timeout_graceful_shutdown=GRACE_SECONDS, server_header=False,
                            access_log=False, lifespan="on")
    return ApiServer(config, app.state.clipper)


def run_api(settings: Settings, *, host: str = "127.0.0.1", port: int | None = None) -> int:
    """Serve the API in the foreground until stopped; 0 after a clean stop."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    server = make_server(settings, host=host, port=port)
    server.run()
    # uvicorn returns (rather than raising) when it could not bind the port.
    return 0 if server.started else 1
