"""`llmforge dashboard`: a real Prefect server with the UI, the project's deployments, and a worker.

The temporary server Prefect starts on demand has no UI and runs no schedules,
so watching runs, reading artifacts, triggering stages and honouring the
schedules in prefect.yaml need this long-running trio.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from llmforge.prefect_env import server_is_up

WORK_POOL = "llmforge-process"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _prefect(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefect", *args]


def serve_dashboard(host: str, port: int, startup_timeout: float = 120.0) -> int:
    api = f"http://{host}:{port}/api"
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    processes: list[subprocess.Popen] = []
    try:
        if server_is_up(api):
            print(f"using the Prefect server already running at {api}")
        else:
            processes.append(subprocess.Popen(_prefect("server", "start", "--host", host, "--port", str(port)), env=env))
            deadline = time.monotonic() + startup_timeout
            while not server_is_up(api):
                if processes[0].poll() is not None or time.monotonic() > deadline:
                    print(f"the Prefect server did not start on {host}:{port}", file=sys.stderr)
                    return 1
                time.sleep(1.0)
        subprocess.run(_prefect("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite"), env=env, check=True)
        subprocess.run(_prefect("--no-prompt", "deploy", "--all"), env=env, cwd=PROJECT_ROOT, check=True)
        processes.append(subprocess.Popen(_prefect("worker", "start", "--pool", WORK_POOL), env=env, cwd=PROJECT_ROOT))
        print(f"\nDashboard: http://{host}:{port}  (CLI runs in another terminal show up here; Ctrl-C stops it)\n")
        while all(p.poll() is None for p in processes):
            time.sleep(1.0)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
