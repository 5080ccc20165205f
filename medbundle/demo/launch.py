"""Start the Streamlit server on the demo page, offline: no usage statistics, no file watcher, no error details.

Streamlit's own options are set here as command-line flags (they win over any ``.streamlit/config.toml``), so the
demo behaves the same on every machine.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from medbundle.demo.settings import DemoSettings

__all__ = ["APP", "streamlit_options", "port_free", "launch"]

#: the page script Streamlit runs.
APP = Path(__file__).resolve().with_name("app.py")


def streamlit_options(settings: DemoSettings) -> dict[str, Any]:
    """Streamlit's config options for ``settings``: address, port, upload limit, and nothing sent anywhere.

    ``browser.gatherUsageStats`` off (the page then loads no telemetry), ``server.headless`` (no browser opened, no
    e-mail prompt), no file watcher or rerun on save, error details ``none`` (the page catches every error and
    shows one line; the server log keeps the traceback), the toolbar reduced to its minimum.
    """
    return {
        "server.address": settings.host,
        "server.port": settings.port,
        "server.maxUploadSize": settings.max_upload_mb,
        "server.headless": True,
        "server.showEmailPrompt": False,
        "server.fileWatcherType": "none",
        "server.runOnSave": False,
        "browser.gatherUsageStats": False,
        "browser.serverAddress": settings.host,
        "global.developmentMode": False,
        "client.showErrorDetails": "none",
        "client.toolbarMode": "minimal",
        "theme.base": "light",
    }


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def launch(settings: DemoSettings) -> None:
    """Serve the page until interrupted (Ctrl-C); Streamlit exits the process when it stops."""
    from streamlit.web import cli

    flags = [f"--{key}={str(value).lower() if isinstance(value, bool) else value}"
             for key, value in streamlit_options(settings).items()]
    cli.main(args=["run", str(APP), *flags, "--", *settings.as_args()], prog_name="streamlit")
