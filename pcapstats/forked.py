"""One function run in a forked copy of this process while this one goes on.

After a parallel run the work left (the affinity attribution, the summary, the
reports) ran in one process while the other cores idled. Two pieces of it read
the same finished rows and neither needs the other: the summary and the
affinity attribution. A child made with ``fork`` has the rows already (the
pages are shared until written), computes one piece and sends back only its
result, which is small; this process computes the other meanwhile.

Only where that is safe and worth it: ``fork`` exists, this process runs no
other thread (a child of a threaded process can inherit a lock held forever),
and the caller has found the work large enough. Otherwise, or when the child
fails in any way, the function runs here when its result is asked for: the
result is the same either way, only the time differs.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from typing import Any, Callable


class Forked:
    """``fn(*args)``, computed in a child process from now on (see the module
    docstring; with ``fork=False``, here when asked for); :meth:`result` waits for
    it. Use as a context manager, so that a child whose result is never asked for
    is stopped."""

    def __init__(self, fn: Callable[..., Any], *args: Any, fork: bool = True) -> None:
        self._call = (fn, args)
        self._pid: int | None = None
        self._fd = -1
        if not fork or not hasattr(os, "fork") or not hasattr(signal, "pthread_sigmask") \
                or threading.active_count() > 1:
            return
        try:
            rfd, wfd = os.pipe()
        except OSError:
            return
        # Ctrl-C is held back around the fork: in the child it must not unwind into the
        # caller's code, and here a child must not be left unrecorded (it can still land
        # in this process as soon as the fork returns: hence the except)
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        pid = -1
        try:
            pid = os.fork()
            if pid == 0:
                _child(fn, args, rfd, wfd, held)    # (never returns)
            self._pid, self._fd = pid, rfd
            w, wfd = wfd, -1    # (an interrupt may land as the close returns)
            os.close(w)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        except BaseException as exc:
            if pid > 0:
                self._pid, self._fd = pid, rfd
                self._reap(kill=True)
            else:
                os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            if pid == -1 and isinstance(exc, OSError):
                return      # no fork: computed here when asked
            raise

    @property
    def forked(self) -> bool:
        """Whether a child is computing the result (else it is computed when asked for)."""
        return self._pid is not None

    def result(self) -> Any:
        """The function's result: the child's, else computed here."""
        if self._pid is not None:
            try:
                with os.fdopen(self._fd, "rb") as src:
                    self._fd = -1
                    data = src.read()
            except OSError:
                data = b""
            ok = self._reap(kill=False) and data
            if ok:
                try:
                    return pickle.loads(data)
                except Exception:   # a cut message: compute it here
                    pass
        fn, args = self._call
        return fn(*args)

    def _reap(self, kill: bool) -> bool:
        """Wait for the child (stopped first when ``kill``); whether it succeeded. The
        child stays recorded until reaped, so an interrupted wait is finished on exit."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        pid = self._pid
        if pid is None:
            return False
        if kill:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            self._pid = None
            return False
        self._pid = None
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

    def __enter__(self) -> "Forked":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pid is not None:
            self._reap(kill=True)


def _child(fn: Callable[..., Any], args: tuple, rfd: int, wfd: int, held: Any) -> None:
    """The child: compute, send, exit; it never returns to the caller's code."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)    # (Ctrl-C ends it at once)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        os.close(rfd)
        data = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(wfd, "wb") as out:
            out.write(data)
        code = 0
    finally:
        os._exit(code)
