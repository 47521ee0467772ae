"""exit_now: a worker leaves with its exit code after what a normal shutdown does that anyone can observe."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_exit_now_joins_threads_runs_atexit_handlers_and_flushes_output(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import atexit, pathlib, sys, threading, time
        from kubetune_trainer.shutdown import exit_now

        root = pathlib.Path({str(tmp_path)!r})
        atexit.register(lambda: (root / "atexit").write_text("ran"))

        def late() -> None:
            time.sleep(0.2)
            (root / "thread").write_text("joined")

        threading.Thread(target=late).start()  # not a daemon: a normal exit waits for it
        sys.stdout.write("buffered, no newline")
        sys.stderr.write("on stderr")
        exit_now(3)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3
    assert done.stdout == "buffered, no newline"
    assert done.stderr == "on stderr"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "joined"
