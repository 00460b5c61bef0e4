"""The peak memory of the current process, for benchmarks and tests run in a child process."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    ``VmHWM``, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over ``exec`` from the
    forked copy of the parent (a test runner or an emulator holding every record), so
    it would measure the parent rather than the child.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
