"""medbundle.launch: N ranks of one process group on this machine, with every listening socket on loopback."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from medbundle.launch import loopback_interface, main
from helpers.ranks import launch_ranks

WORKER = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    import torch, torch.distributed as dist

    def listening(pid):
        """(address, port) of every TCP socket in LISTEN state that process ``pid`` holds (from /proc)."""
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        found = []
        for table, width in (("tcp", 8), ("tcp6", 32)):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and f[9] in inodes:
                    addr, port = f[1].split(":")
                    found.append((addr, int(port, 16)))
        return found

    dist.init_process_group("gloo")
    t = torch.ones(1) * (dist.get_rank() + 1)
    dist.all_reduce(t)
    out = Path(sys.argv[1])
    pids = [os.getpid()] + ([os.getppid()] if dist.get_rank() == 0 else [])
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(
        {"sum": t.item(), "world": dist.get_world_size(), "sockets": [s for p in pids for s in listening(p)]}))
    dist.barrier()
    dist.destroy_process_group()
''')

# 127.0.0.1 as /proc/net/tcp writes it (little-endian hex), and ::ffff:127.0.0.1 / ::1 in tcp6
LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="reads listening sockets from Linux's /proc")
def test_ranks_meet_and_every_socket_listens_on_loopback(tmp_path):
    proc = launch_ranks(WORKER, tmp_path, str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["sum"] for r in ranks] == [3.0, 3.0] and ranks[0]["world"] == 2
    sockets = [tuple(s) for r in ranks for s in r["sockets"]]
    assert sockets, "no listening socket seen: the store and gloo must listen somewhere"
    assert all(addr in LOOPBACK_HEX for addr, _ in sockets), f"listening beyond loopback: {sockets}"


@pytest.mark.slow
def test_a_failing_rank_stops_the_others_with_its_status(tmp_path):
    proc = launch_ranks("import os, sys, time\nif os.environ['RANK'] == '1':\n    sys.exit(3)\ntime.sleep(120)\n",
                        tmp_path, timeout=100)
    assert proc.returncode == 3 and "rank 1 exited with status 3" in proc.stderr


def test_bad_arguments_are_one_line(capsys):
    for argv in (["--nproc_per_node", "0", "x.py"], []):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "error:" in capsys.readouterr().err.strip().splitlines()[-1]


def test_loopback_interface_is_found():
    assert loopback_interface() in ("lo", "lo0") or sys.platform not in ("linux", "darwin")
