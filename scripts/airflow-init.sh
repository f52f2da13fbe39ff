#!/usr/bin/env bash
# Source me after airflow-env.sh: migrate the metadata database and size the
# Airflow pool `gpu` (one training task per GPU; TOPO_CPU_TRAINING_SLOTS
# without one). Safe to run again: both steps are idempotent.
airflow db migrate >/dev/null
_slots=$(topo training-slots 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["slots"])')
airflow pools set gpu "${_slots:-1}" "training tasks at once: one per GPU (topo training-slots)" >/dev/null
unset _slots
