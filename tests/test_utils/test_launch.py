"""shutdown_distributed: after a gloo run the process ends at once with exit
code 0, having run its atexit handlers and flushed its output (it skips
the interpreter finalization in which gloo's worker threads can abort the
finished process); without a process group it does nothing."""
import os
import subprocess
import sys
import textwrap

import pytest
from dist_utils import free_port
from tool_utils import ENV, REPO, failure_report

from mmnckd.utils import shutdown_distributed

WORKER = '''
import atexit, os, sys
import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from mmnckd.utils import shutdown_distributed

out = sys.argv[1]
dist.init_process_group('gloo')
rank = dist.get_rank()
atexit.register(
    lambda: open(os.path.join(out, f'atexit{rank}'), 'w').close())
model = DistributedDataParallel(torch.nn.Linear(4, 2))
model(torch.randn(8, 4)).sum().backward()
sys.stdout.write(f'rank {rank} trained, no newline yet')  # left buffered
shutdown_distributed()
open(os.path.join(out, f'after{rank}'), 'w').close()  # never reached
'''


def test_without_a_process_group_it_returns():
    assert shutdown_distributed() is None


@pytest.mark.slow
def test_gloo_run_exits_zero_after_atexit_handlers(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(textwrap.dedent(WORKER))
    proc = subprocess.run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={free_port()}',
        str(script),
        str(tmp_path)
    ],
                          cwd=REPO,
                          env=dict(os.environ, **ENV),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, failure_report(proc.args, proc)
    for rank in (0, 1):
        assert f'rank {rank} trained, no newline yet' in proc.stdout
        assert (tmp_path / f'atexit{rank}').is_file()
        assert not (tmp_path / f'after{rank}').exists()
