"""The servers of `ivadas up` live only as long as the `ivadas up` process that started them.

`ivadas up` stops its servers itself on Ctrl-C, SIGTERM and SIGHUP. When it cannot — it was sent
SIGKILL (`docker stop` after its grace period, `kill -9`), the OOM killer took it, or it crashed —
each server notices on its own and stops, so that no server is left holding its port.

How: the parent holds the write end of a pipe that it never writes to; every server inherits only
the read end, and `python -m infra.local.lifeline MODULE` runs MODULE (as `python -m MODULE` would)
with a thread blocked reading it. However the parent ends, the kernel closes its descriptors, the
read returns end-of-file and the server sends itself SIGTERM (a gunicorn master then stops its
workers gracefully), escalating to SIGKILL of its process group if it has not exited in time.

Why not prctl(PR_SET_PDEATHSIG) from a preexec_fn: the death signal fires when the *thread* that
forked the child exits, not the process (`ivadas up` starts endpoints from its registry-watcher
thread too); preexec_fn is unsafe in a process that has threads (the child can deadlock before
exec); there is a race if the parent dies before prctl runs; and it is Linux-only, while a pipe's
end-of-file works on every POSIX system, immediately and without polling.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading

ENV_FD = "IVADAS_LIFELINE_FD"
#: How long a server may take to stop gracefully once its parent is gone (gunicorn's own graceful
#: timeout is 30 s) before its whole process group is killed.
GRACE_S = 40.0


class Lifeline:
    """Parent side: the pipe whose read end every server started through `command` inherits."""

    def __init__(self):
        # os.pipe() descriptors are not inheritable: no other child (pipeline steps, for one) gets
        # a copy of the write end, which would keep the line open after the parent has gone.
        self._read_fd, self._write_fd = os.pipe()

    def command(self, module: str) -> list[str]:
        """The command line that runs `python -m module` tied to this lifeline."""
        return [sys.executable, "-m", __name__, module]

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """For `subprocess.Popen(pass_fds=...)`: the read end, and only it."""
        return (self._read_fd,)

    @property
    def env(self) -> dict[str, str]:
        """The child's environment additions: where it finds the read end."""
        return {ENV_FD: str(self._read_fd)}

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def watch(fd: int, grace_s: float = GRACE_S) -> threading.Thread:
    """Child side: stop this process when the parent holding the pipe's write end is gone."""
    os.fstat(fd)  # a bad descriptor is an error now, not a server that can never notice its parent's death

    def wait_for_parent_exit() -> None:
        while os.read(fd, 1):  # the parent never writes; b"" means every write end is closed
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(grace_s)
        if os.getpgrp() == os.getpid():  # started in its own session: the group is this server and its workers
            os.killpg(os.getpid(), signal.SIGKILL)
        else:
            os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=wait_for_parent_exit, name="lifeline", daemon=True)
    thread.start()
    return thread


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m infra.local.lifeline MODULE  (with the pipe's read end in $" + ENV_FD + ")")
    if ENV_FD not in os.environ:
        sys.exit(f"${ENV_FD} is not set: start this through infra.local.lifeline.Lifeline")
    watch(int(os.environ[ENV_FD]))
    sys.argv[1:] = []  # the module sees the command line `python -m MODULE` would give it
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
