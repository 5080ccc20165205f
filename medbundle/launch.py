"""Start N processes of a command on this machine, every socket on loopback: ``torchrun --standalone`` without the
open port.

``torchrun`` hosts PyTorch's rendezvous store (a ``TCPStore``) in its agent, and that store listens on all
interfaces whatever address it is given (torch 2.13: ``ss -ltn`` shows ``*:<port>`` for ``--standalone``,
``--rdzv-endpoint 127.0.0.1:<port>`` and ``--master_addr 127.0.0.1``): an unauthenticated key-value store reachable
from the network for the length of the run. This launcher binds the store's socket itself, to ``127.0.0.1`` at a free
port, hands it to ``TCPStore`` (``master_listen_fd``), and starts the processes with the environment ``torchrun``
gives them (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, and
``TORCHELASTIC_USE_AGENT_STORE`` so that ``init_process_group`` joins this store as a client); gloo and NCCL are
told to use the loopback interface (``GLOO_SOCKET_IFNAME`` / ``NCCL_SOCKET_IFNAME``, unless already set). When one
process fails, the others are stopped and its exit status is the launcher's.

Usage (one machine; multi-node runs use ``torchrun`` and a firewall)::

    python -m medbundle.launch --nproc_per_node 2 -m monai.bundle run --config_file \\
        "['bundles/ct_infection/configs/train.json','bundles/ct_infection/configs/multi_gpu_train.json']"
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

__all__ = ["launch", "loopback_interface", "main"]

LOOPBACK = "127.0.0.1"


def loopback_interface() -> str | None:
    """The name of this machine's loopback network interface (``lo`` on Linux, ``lo0`` on macOS), or None."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except (OSError, AttributeError):
        return None
    return next((n for n in names if n in ("lo", "lo0")), next((n for n in names if n.startswith("lo")), None))


def _listen_on_loopback() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(128)
    return sock


def _worker_env(rank: int, world_size: int, port: int, base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    env.update(RANK=str(rank), LOCAL_RANK=str(rank), GROUP_RANK="0", ROLE_RANK=str(rank), WORLD_SIZE=str(world_size),
               LOCAL_WORLD_SIZE=str(world_size), ROLE_WORLD_SIZE=str(world_size), MASTER_ADDR=LOOPBACK,
               MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True", TORCHELASTIC_RESTART_COUNT="0",
               TORCHELASTIC_MAX_RESTARTS="0", TORCHELASTIC_RUN_ID="medbundle")
    lo = loopback_interface()
    if lo is not None:
        env.setdefault("GLOO_SOCKET_IFNAME", lo)
        env.setdefault("NCCL_SOCKET_IFNAME", lo)
    if world_size > 1:
        env.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: N processes must not each take every core
    return env


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch(command: Sequence[str], nproc_per_node: int = 1) -> int:
    """Run ``command`` (an argv list) as ``nproc_per_node`` ranks of one process group on this machine.

    Args:
        command: the program and its arguments, e.g. ``[sys.executable, "-m", "monai.bundle", "run", ...]``.
        nproc_per_node: the number of processes (ranks).

    Returns:
        0 when every process exits 0, else the exit status of the first one that failed (the others are stopped).
    """
    import torch.distributed as dist

    sock = _listen_on_loopback()
    port = sock.getsockname()[1]
    # the store owns (and closes) the listening socket from here on
    store = dist.TCPStore(LOOPBACK, port, nproc_per_node, is_master=True, master_listen_fd=sock.detach(),
                          wait_for_workers=False)
    procs = [subprocess.Popen(list(command), env=_worker_env(rank, nproc_per_node, port, dict(os.environ)))
             for rank in range(nproc_per_node)]
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = next((c for c in codes if c not in (None, 0)), None)
            if failed is not None:
                rank = codes.index(failed)
                print(f"medbundle.launch: rank {rank} exited with status {failed}; stopping the other ranks",
                      file=sys.stderr)
                _stop(procs)
                return failed
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.2)
    except KeyboardInterrupt:
        _stop(procs)
        return 130
    finally:
        del store


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medbundle.launch",
        description="Start N ranks of a command on this machine with every socket on loopback (torchrun --standalone "
                    "without a rendezvous store open to the network).")
    parser.add_argument("--nproc_per_node", "--nproc-per-node", type=int, default=1, help="number of processes")
    parser.add_argument("-m", dest="module", help="run a module, as python -m")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script (without -m) and its arguments")
    ns = parser.parse_args(argv)
    if ns.nproc_per_node < 1:
        parser.error(f"--nproc_per_node {ns.nproc_per_node}: give 1 or more processes")
    if ns.module:
        command = [sys.executable, "-m", ns.module, *ns.args]
    elif ns.args:
        command = [sys.executable, *ns.args]
    else:
        parser.error("nothing to run: give -m <module> [args] or <script.py> [args]")
    return launch(command, ns.nproc_per_node)


if __name__ == "__main__":
    sys.exit(main())
