"""release_freed_memory gives the pages freed by a thread back to the system."""

import threading

from maxrf.memory import release_freed_memory


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def test_pages_freed_in_a_thread_are_returned():
    kept = []

    def work():
        # 32 KiB buffers (under malloc's mmap threshold: they live in the thread's arena)
        # interleaved with small survivors, so that the freed ones are holes the allocator
        # keeps rather than returns by itself
        chunks = []
        for _ in range(6000):
            chunks.append(bytearray(32768))
            kept.append(bytearray(600))
        chunks.clear()

    t = threading.Thread(target=work)
    t.start()
    t.join()
    before = _rss_mb()
    release_freed_memory()
    after = _rss_mb()
    assert before - after > 100, (before, after)  # of the ~190 MB freed
    assert len(kept) == 6000
