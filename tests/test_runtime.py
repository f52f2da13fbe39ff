"""Runtime helpers: Dask clients inside an Airflow task process, and the size of the pool `gpu`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tasks.core.runtime import gpu_count, training_slots
from tasks.core.settings import Settings


def test_dask_workers_start_when_the_main_script_is_the_airflow_cli(tmp_path):
    """An Airflow task process runs the `airflow` script as __main__ and cannot
    import Airflow again (the metadata DB is blocked there). Dask's spawned
    workers must not re-run that script, or none of them ever starts."""
    script = tmp_path / "airflow"  # named like the CLI whose main Airflow tasks run under
    script.write_text(
        textwrap.dedent("""
        import sys
        if __name__ != "__main__":
            raise SystemExit("re-ran the main script in a worker")
        from tasks.core.settings import Settings
        from tasks.core.runtime import dask_client
        with dask_client(Settings(dask_workers=1)) as client:
            print("sum", client.submit(sum, [1, 2, 3]).result(timeout=60))
        print("__file__ restored:", __file__ == sys.argv[0])
    """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert "sum 6" in done.stdout, done.stderr[-3000:]
    assert "__file__ restored: True" in done.stdout
    assert "re-ran the main script" not in done.stderr


def test_training_slots_follow_the_gpus_else_the_setting():
    slots = training_slots(Settings(cpu_training_slots=3))
    assert slots == (gpu_count() or 3) and slots >= 1
