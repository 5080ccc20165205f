"""medbundle.runtime: device resolution, and the end of a distributed rank."""

from __future__ import annotations

import textwrap

import pytest
import torch

from medbundle.runtime import finish_distributed, resolve_device
from helpers.ranks import launch_ranks


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device().type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_finish_distributed_does_nothing_outside_a_distributed_run():
    assert finish_distributed() is None  # returns: no process group, no exit


FINISHING_RANK = textwrap.dedent('''
    import atexit, logging, sys, threading, time
    from pathlib import Path
    import torch, torch.distributed as dist
    from medbundle.runtime import finish_distributed

    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    t = torch.ones(3) * (rank + 1)
    dist.all_reduce(t)
    log = logging.getLogger("finishing")
    log.addHandler(logging.FileHandler(out / f"rank{rank}.log", delay=True))
    log.warning("sum %s", t.tolist())
    atexit.register(lambda: (out / f"atexit{rank}").write_text("ran"))

    def slow_writer():  # a non-daemon thread still working (as a checkpoint being written)
        time.sleep(0.5)
        (out / f"thread{rank}").write_text("done")

    threading.Thread(target=slow_writer).start()
    print(f"rank {rank} printed", end="")  # buffered: standard output is a pipe
    finish_distributed()
    (out / f"after{rank}").write_text("finish_distributed returned")
''')


@pytest.mark.slow
def test_finish_distributed_ends_each_rank_as_a_normal_exit_would(tmp_path):
    proc = launch_ranks(FINISHING_RANK, tmp_path, str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank} printed" in proc.stdout
        assert (tmp_path / f"rank{rank}.log").read_text().strip() == "sum [3.0, 3.0, 3.0]"
        assert (tmp_path / f"atexit{rank}").read_text() == "ran"
        assert (tmp_path / f"thread{rank}").read_text() == "done"
        assert not (tmp_path / f"after{rank}").exists()  # it exits: nothing after it runs
