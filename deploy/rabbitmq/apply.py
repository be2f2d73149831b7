#!/usr/bin/env python3
"""Load hybridq's definitions into a RabbitMQ through its management API, and give each
service user its password from a secret file (the definitions carry no passwords).

  python deploy/rabbitmq/apply.py --url http://rabbitmq:15672 \\
      --admin-user admin --admin-password-file /run/secrets/rabbitmq_admin \\
      --passwords-dir /run/secrets/hybridq   # files named after the users

A user without a password file is created with no password (it cannot log in until
one is set). Standard library only, so it runs in any Python image.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent


def request(base: str, auth: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}{path}", data=data, method=method)
    req.add_header("Authorization", f"Basic {auth}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def apply(args: argparse.Namespace) -> None:
    definitions = json.loads(Path(args.definitions).read_text())
    vhost = args.vhost or definitions["vhosts"][0]["name"]
    password = Path(args.admin_password_file).read_text().strip()
    auth = base64.b64encode(f"{args.admin_user}:{password}".encode()).decode()
    base = args.url.rstrip("/")
    v = quote(vhost, safe="")
    request(base, auth, "PUT", f"/api/vhosts/{v}", {})
    passwords = Path(args.passwords_dir) if args.passwords_dir else None
    for user in definitions["users"]:
        name = user["name"] + args.user_suffix
        body: dict[str, Any] = {"tags": ",".join(user.get("tags") or [])}
        secret = passwords / user["name"] if passwords else None
        if secret is not None and secret.exists():
            body["password"] = secret.read_text().strip()
        else:
            body["password_hash"] = ""
        request(base, auth, "PUT", f"/api/users/{quote(name, safe='')}", body)
    for perm in definitions["permissions"]:
        name = quote(perm["user"] + args.user_suffix, safe="")
        request(
            base,
            auth,
            "PUT",
            f"/api/permissions/{v}/{name}",
            {k: perm[k] for k in ("configure", "write", "read")},
        )
    for topic in definitions.get("topic_permissions", []):
        name = quote(topic["user"] + args.user_suffix, safe="")
        request(
            base,
            auth,
            "PUT",
            f"/api/topic-permissions/{v}/{name}",
            {k: topic[k] for k in ("exchange", "write", "read")},
        )
    topology = {
        key: [{k: val for k, val in item.items() if k != "vhost"} for item in definitions[key]]
        for key in ("exchanges", "queues", "bindings", "policies")
    }
    request(base, auth, "POST", f"/api/definitions/{v}", topology)
    print(f"definitions applied to vhost {vhost!r}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:15672")
    parser.add_argument("--admin-user", required=True)
    parser.add_argument("--admin-password-file", required=True)
    parser.add_argument("--definitions", default=str(HERE / "definitions.json"))
    parser.add_argument("--vhost", help="load into this vhost instead of the file's")
    parser.add_argument("--passwords-dir", help="a file per user, named after it")
    parser.add_argument("--user-suffix", default="", help="append to user names (tests)")
    args = parser.parse_args()
    try:
        apply(args)
    except urllib.error.HTTPError as exc:
        print(f"apply failed: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
