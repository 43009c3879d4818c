"""The watchdog of a private local Ray: the Ray goes when its driver goes, however the driver ends.

`vtrlab.cluster.LocalRay` runs ``python -I ray_watchdog.py FD MARK -- ray start --head --block ...``. The
watchdog starts the Ray head in a process group of its own (with a parent-death signal, so the head also
stops if the watchdog itself is killed) and blocks on FD, the read end of a pipe whose write end only the
driver holds. End of file means the driver closed it (`LocalRay.stop`) or died (any signal, SIGKILL
included; the kernel closes its descriptors). The watchdog then stops the head (SIGINT to its process group,
SIGKILL after a grace period), kills every process still carrying the session's mark in its environment
(``VTRLAB_LOCAL_RAY=MARK``: Ray's workers, job supervisors and job drivers run in process groups of their
own), and removes the session's temp dir MARK. It exits when the head exits on its own, too.

Standard library and psutil only: it runs isolated (``-I``), outside vtrlab's import path.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import time

import psutil

MARK_ENV = "VTRLAB_LOCAL_RAY"
GRACE_SECONDS = 5.0  # for the head to stop on SIGINT; what is left then is killed


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT, 0, 0, 0)  # PR_SET_PDEATHSIG


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``VTRLAB_LOCAL_RAY=mark`` (this process excluded)."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if proc.environ().get(MARK_ENV) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def stop_session(head_pid: int | None, mark: str, grace: float = GRACE_SECONDS) -> None:
    """Stop the head's process group (SIGINT, SIGKILL after ``grace``), then kill everything marked with
    ``mark``; remove the temp dir ``mark``."""
    if head_pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(head_pid, signal.SIGINT)  # `ray start --block` stops its children in ~2 s on SIGINT
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(head_pid):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(head_pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        left = marked_processes(mark)
        if not left or time.monotonic() > deadline:
            break
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(left, timeout=2)
    shutil.rmtree(mark, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def main(argv: list[str]) -> int:
    fd, mark = int(argv[0]), argv[1]
    command = argv[argv.index("--") + 1 :]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # terminal signals are the driver's to handle; EOF is ours
    head = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)
    code = 0
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready and not os.read(fd, 4096):
                break  # the driver is gone (or LocalRay.stop closed the pipe)
            if head.poll() is not None:
                code = head.returncode or 1
                break
    finally:
        stop_session(head.pid, mark)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=1)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
