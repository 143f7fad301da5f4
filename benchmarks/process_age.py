"""How long ago this process started: the phase tables' "interpreter start".

psutil's ``create_time()`` adds the process's start (clock ticks since boot) to the boot
time, which Linux gives in whole seconds (``btime`` of /proc/stat): on the development
host it reads about 0.68 s early, and the phase tables showed that as 0.72 s of
interpreter start where a bare ``python -c pass`` takes 0.11 s. On Linux both ends are
read on the boot clock instead (/proc/self/stat's start time against CLOCK_BOOTTIME),
good to one clock tick (10 ms); elsewhere psutil's figure stands.
"""

from __future__ import annotations

import os
import time


def seconds() -> float:
    """Seconds since this process started."""
    try:
        with open("/proc/self/stat") as f:
            after_name = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces
        started = int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, AttributeError, ValueError, IndexError):  # not Linux
        import psutil  # a dependency of distributed

        return time.time() - psutil.Process().create_time()
