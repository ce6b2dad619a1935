"""Runs trainval_model.py with a fault injected, for the fault-injection tests: the process
kills itself with SIGKILL (as `kill -9` would) at the chosen point, or a write raises ENOSPC.

    python tests/fault_runner.py FAULT N -- trainval_model.py's arguments

FAULT, at its N-th occurrence (1-based):
    after-step      right after a train step returns (before its log row and snapshot)
    in-snapshot     inside a snapshot write: its data in place, its JSON and .index not
    in-log          inside the log append: half of the row written
    enospc-snapshot a snapshot write fails with ENOSPC (no kill: the run must stop cleanly)
"""

import builtins
import errno
import os
import runpy
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kill():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Counter:
    def __init__(self, n):
        self.n, self.seen = n, 0

    def hit(self):
        self.seen += 1
        return self.seen == self.n


def install(fault, n):
    count = Counter(n)
    if fault == 'after-step':
        from util.pipeline import trainer
        step = trainer.Trainer.train_step

        def train_step(self, *args):
            out = step(self, *args)
            if count.hit():
                kill()
            return out
        trainer.Trainer.train_step = train_step
    elif fault in ('in-snapshot', 'enospc-snapshot'):
        from util.pipeline import checkpoint
        write_json = checkpoint.write_json

        def patched(path, obj, **kw):
            if count.hit():
                if fault == 'in-snapshot':
                    kill()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
            return write_json(path, obj, **kw)
        checkpoint.write_json = patched
    elif fault == 'in-log':
        real_open = builtins.open

        class HalfWriter:
            def __init__(self, f):
                self.f = f

            def write(self, text):
                self.f.write(text[:len(text) // 2])
                self.f.flush()
                kill()

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

        def patched_open(file, mode='r', *args, **kw):
            f = real_open(file, mode, *args, **kw)
            if str(file).endswith('train_log.jsonl') and 'a' in mode and count.hit():
                return HalfWriter(f)
            return f
        builtins.open = patched_open
    else:
        raise SystemExit('unknown fault %r' % fault)


if __name__ == '__main__':
    fault, n, sep = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    assert sep == '--'
    sys.path.insert(0, ROOT)
    install(fault, n)
    script = os.path.join(ROOT, 'trainval_model.py')
    sys.argv = [script] + sys.argv[4:]
    runpy.run_path(script, run_name='__main__')
