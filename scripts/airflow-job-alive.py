"""Container healthcheck: is this host's Airflow job alive?

    python scripts/airflow-job-alive.py SchedulerJob|DagProcessorJob|TriggererJob HOSTNAME [SECONDS]

The same question as `airflow jobs check --job-type T --hostname H` (a running
job of that type on that host whose last heartbeat is younger than SECONDS,
default 60), asked of the metadata database directly. `airflow jobs check`
imports Airflow, about 7 s of CPU: with every role checked every few seconds
that was a whole core of a 2-core laptop spent on healthchecks. This costs
psycopg2 and one query. Exit status 0 when alive, 1 (with the reason) when not.
"""

from __future__ import annotations

import os
import sys

import psycopg2


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    job_type, hostname = argv[:2]
    seconds = float(argv[2]) if len(argv) == 3 else 60.0
    # SQLAlchemy's URL names its driver (postgresql+psycopg2://); libpq takes the plain scheme.
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://", 1)
    with psycopg2.connect(url, connect_timeout=5) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM job WHERE job_type = %s AND hostname = %s AND state = 'running'"
            " AND latest_heartbeat > now() - make_interval(secs => %s)",
            (job_type, hostname, seconds),
        )
        (alive,) = cursor.fetchone()
    if not alive:
        print(f"no running {job_type} on {hostname} with a heartbeat in the last {seconds:g} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
