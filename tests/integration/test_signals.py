"""A controller blocked in ``run()`` on the main thread still lets Python run signal handlers.

CPython runs a signal's Python handler on the main thread, but the kernel may deliver a
process-directed signal to any thread; one that lands on a worker or informer thread does
not wake a main thread blocked without a timeout, and Ctrl-C in a script (examples/
library_usage.py) then did nothing. The child process here sends SIGINT to one of its own
worker threads, the worst case, deterministically.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import signal, sys, threading
    from faro import Config, Controller, KubernetesClient
    from faro.testing import SimulatedCluster

    with SimulatedCluster() as cluster:
        config = Config.from_dict({"resources": [{"gvr": "v1/configmaps"}]})
        controller = Controller(KubernetesClient(cluster.api_client), config)

        def on_signal(signum, frame):
            print("handler ran", flush=True)
            threading.Thread(target=controller.stop).start()

        signal.signal(signal.SIGINT, on_signal)

        def main_thread_blocked():
            frame = sys._current_frames().get(threading.main_thread().ident)
            return frame is not None and frame.f_code.co_name == "wait" and \
                frame.f_back is not None and frame.f_back.f_code.co_name != "wait_until_ready"

        def signal_from_another_thread():
            controller.wait_until_ready(30)
            poll = threading.Event()
            for _ in range(3000):  # until the main thread sits in run()'s wait (30 s at most)
                if main_thread_blocked():
                    break
                poll.wait(0.01)
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # lands on this thread

        threading.Thread(target=signal_from_another_thread, daemon=True).start()
        controller.run()
        print("run returned", flush=True)
""")


def test_a_signal_delivered_to_another_thread_reaches_the_handler_during_run() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=20, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["handler ran", "run returned"], done.stderr

