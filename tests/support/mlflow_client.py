"""The MLflow server's REST API as the tests call it: with the admin's basic
auth, or without any to see it refused."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request


def mlflow_get(url: str, password: str, path: str, auth: bool = True) -> tuple[int, dict]:
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers), timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}
