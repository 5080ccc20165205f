"""``python -m medbundle.demo``: check the settings and load the model, then serve the page.

Every problem a user can cause (no such bundle or run folder, no trained model, Streamlit not installed, the port
taken) is one line on stderr and exit code 2, before any server starts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]

PROG = "python -m medbundle.demo"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo with the arguments ``argv`` (``sys.argv[1:]`` when None); returns the exit code on a refusal."""
    from medbundle.demo.settings import parse_settings

    settings = parse_settings(argv)
    try:
        import streamlit  # noqa: F401
    except ImportError:
        print(f'{PROG}: Streamlit is not installed. Install the demo extra: pip install -c constraints.txt -e ".[demo]"',
              file=sys.stderr)
        return 2
    from medbundle.demo.launch import launch, port_free
    from medbundle.demo.predictors import get_predictor
    from medbundle.serving import PredictorError

    if not port_free(settings.host, settings.port):
        print(f"{PROG}: {settings.host}:{settings.port} is in use or not an address of this machine. "
              f"Pass another --port or --host.", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    import torch

    torch.set_num_threads(settings.threads)  # every thread's default, the page's included
    try:
        predictor = get_predictor(settings.bundle, settings.run_dir)  # loaded once; the page gets the same object
    except PredictorError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    logging.getLogger("medbundle.demo").info("serving %s on http://%s:%d (upload limit %d MB, %d torch "
                                             "threads)", predictor.name, settings.host, settings.port,
                                             settings.max_upload_mb, settings.threads)
    launch(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
