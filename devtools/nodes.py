"""Extra local RabbitMQ nodes: a 3-node cluster for `make test-cluster`, or two separate
brokers for the hybrid-link tests. The machine's own node (rabbit@localhost) is never touched.

Each node gets its own name, ports and data folder (owned by the `rabbitmq` user, which
`rabbitmq-server` switches to when started as root) and shares the machine's Erlang cookie,
so nodes can be joined with `rabbitmqctl join_cluster`.

    python -m devtools.nodes cluster-start [--nodes 3] [--base var/cluster]
    python -m devtools.nodes cluster-stop  [--base var/cluster]
    python -m devtools.nodes kill    NAME  [--base var/cluster]   # kill -9 of its VM
    python -m devtools.nodes restart NAME  [--base var/cluster]   # back, data kept
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

PLUGINS = ("rabbitmq_management", "rabbitmq_shovel", "rabbitmq_shovel_management")
CLUSTER_FIRST_PORT = 5701
STATE_FILE = "nodes.json"


@dataclass(frozen=True)
class Node:
    name: str
    port: int
    dist_port: int
    management_port: int
    base: str

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"

    @property
    def management(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def amqp_url(self, vhost: str = "/", user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def ctl(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        result = subprocess.run(
            ["rabbitmqctl", "-n", self.nodename, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {self.nodename} {' '.join(args)}: {result.stderr or result.stdout}"
            )
        return result.stdout


def scratch_dir(prefix: str = "hybridq-nodes-") -> Path:
    """A folder for node data that the `rabbitmq` user can reach (pytest's own temporary
    folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def node(name: str, port: int, base: Path) -> Node:
    """A node description: AMQP `port`, distribution port +20000, management port +10000."""
    return Node(name, port, port + 20000, port + 10000, str(base / name))


def _write_files(n: Node, plugins: Sequence[str], config: str = "") -> dict[str, str]:
    base = Path(n.base)
    shutil.rmtree(base, ignore_errors=True)
    (base / "mnesia").mkdir(parents=True)
    (base / "log").mkdir()
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{n.port}\n"
        f"management.tcp.port = {n.management_port}\n"
        "management.tcp.ip = 127.0.0.1\n"
        "collect_statistics_interval = 1000\n"
        f"{config}\n"
    )
    (base / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
    subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(base)], check=True)
    return _environment(n)


def _environment(n: Node) -> dict[str, str]:
    """The `rabbitmq-server` environment of a node whose files `_write_files` made."""
    base = Path(n.base)
    return {
        "RABBITMQ_NODENAME": n.nodename,
        "RABBITMQ_NODE_PORT": str(n.port),
        "RABBITMQ_DIST_PORT": str(n.dist_port),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
    }


def start(
    n: Node, plugins: Sequence[str] = PLUGINS, timeout: float = 180, config: str = ""
) -> None:
    """Start a fresh node and wait until it and its management API answer (a node left
    running under the same name by an interrupted run is stopped first). `config`: more
    rabbitmq.conf lines (e.g. a TLS listener)."""
    if _pings(n):
        n.ctl("stop", check=False)
    env = {**os.environ, **_write_files(n, plugins, config)}
    subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, capture_output=True)
    deadline = time.monotonic() + timeout
    while not _pings(n):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n.nodename} did not start in {timeout}s (logs in {n.base}/log)")
        time.sleep(1)
    n.ctl("await_startup", timeout=timeout)
    wait_management(n, timeout)


def _pings(n: Node) -> bool:
    result = subprocess.run(
        ["rabbitmqctl", "-n", n.nodename, "ping"], capture_output=True, timeout=30, check=False
    )
    return result.returncode == 0


def wait_management(n: Node, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{n.management}/api/overview", auth=("guest", "guest")).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"management API of {n.nodename} did not answer in {timeout}s")


def stop(n: Node) -> None:
    """Stop the node (its Erlang VM) and remove its data folder."""
    if _pings(n):
        n.ctl("stop", check=False)
    shutil.rmtree(n.base, ignore_errors=True)


def kill(n: Node) -> int:
    """`kill -9` the node's Erlang VM (no goodbye to the cluster: a lost machine); its data
    folder stays, for `restart`. Returns the killed process id."""
    pid_file = Path(n.base) / "pid"
    text = pid_file.read_text().strip() if pid_file.exists() else ""
    pid = (
        int(text) if text.isdigit() else int(n.ctl("eval", "list_to_integer(os:getpid()).").strip())
    )
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n.nodename} (pid {pid}) still runs after SIGKILL")
        time.sleep(0.1)
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def restart(n: Node, timeout: float = 180) -> None:
    """Start a node that was killed or stopped again, on its own data (it rejoins its
    cluster), and wait until it and its management API answer."""
    if _pings(n):
        return
    env = {**os.environ, **_environment(n)}
    subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, capture_output=True)
    deadline = time.monotonic() + timeout
    while not _pings(n):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n.nodename} did not restart in {timeout}s (logs in {n.base}/log)")
        time.sleep(1)
    n.ctl("await_startup", timeout=timeout)
    wait_management(n, timeout)


def join(n: Node, seed: Node) -> None:
    n.ctl("stop_app")
    n.ctl("join_cluster", seed.nodename)
    n.ctl("start_app")
    n.ctl("await_startup")


def start_cluster(base: Path, size: int = 3, first_port: int = CLUSTER_FIRST_PORT) -> list[Node]:
    """Start `size` nodes and join them into one cluster; writes `base/nodes.json`."""
    # names carry the port: a cluster of the test suite and one of `make test-cluster` (other
    # ports) never take each other for a node left running
    nodes = [node(f"hybridq-c{first_port + i}", first_port + i, base) for i in range(size)]
    for n in nodes:
        start(n)
    for n in nodes[1:]:
        join(n, nodes[0])
    for n in nodes:
        wait_management(n)
    base.mkdir(parents=True, exist_ok=True)
    (base / STATE_FILE).write_text(json.dumps([asdict(n) for n in nodes], indent=2))
    return nodes


def load(base: Path) -> list[Node]:
    """The nodes a `cluster-start` wrote down (empty if none)."""
    path = base / STATE_FILE
    if not path.exists():
        return []
    return [Node(**fields) for fields in json.loads(path.read_text())]


def stop_cluster(base: Path) -> None:
    for n in reversed(load(base)):
        stop(n)
    (base / STATE_FILE).unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.nodes")
    parser.add_argument("action", choices=["cluster-start", "cluster-stop", "kill", "restart"])
    parser.add_argument("name", nargs="?", help="kill/restart: a node's name (or nodename)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--base", type=Path, default=Path("var/cluster"))
    args = parser.parse_args(argv)
    if args.action == "cluster-start":
        stop_cluster(args.base)
        nodes = start_cluster(args.base.resolve(), args.nodes)
        print("cluster up:", ", ".join(f"{n.nodename} (amqp {n.port})" for n in nodes))
    elif args.action == "cluster-stop":
        stop_cluster(args.base.resolve())
        print("cluster stopped")
    else:
        known = {n.name: n for n in load(args.base.resolve())}
        known |= {n.nodename: n for n in known.values()}
        if args.name not in known:
            parser.error(f"{args.action}: name one of {', '.join(sorted(known)) or '(no cluster)'}")
        target = known[args.name]
        if args.action == "kill":
            print(f"{target.nodename} killed (pid {kill(target)})")
        else:
            restart(target)
            print(f"{target.nodename} back")


if __name__ == "__main__":
    main()
