"""The hybrid link over verified TLS (contract §1 and §7): two brokers of the test's own, each
with a TLS listener that asks for client certificates, a CA and certificates the test makes.
`hybridq link setup` with `amqps://` URLs builds shovels that verify the private broker; a
public job crosses to the public worker and its events come back, every connection on the
private broker is TLS; a shovel given a CA that did not sign the private broker's
certificate, or the broker by a name its certificate does not carry, never comes up (`link
status` says so, the job waits on the private side) until the link is set up right again."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools import environment, nodes
from devtools.stack import Stack
from hybridq_cli.link import PRIVATE, PUBLIC, SHOVELS, ShovelTLS, Side, _shovel_value
from shared.tls import with_files
from tests.brokers import broker_under_test
from tests.certificates import TestPki, make_pki
from tests.e2e.client import events, job, submit, wait_for

pytestmark = pytest.mark.connected
VHOST = "hybridq"
TLS_OFFSET = 10  # a node's TLS port: its AMQP port + 10 (5733, 5734)


@pytest.fixture(scope="module")
def pki() -> Iterator[TestPki]:
    folder = nodes.scratch_dir("hybridq-pki-")  # the nodes run as `rabbitmq`: readable
    try:
        yield make_pki(folder, ["localhost"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tls_listener(pki: TestPki, port: int) -> str:
    return (
        f"listeners.ssl.default = 127.0.0.1:{port}\n"
        f"ssl_options.cacertfile = {pki.ca}\n"
        f"ssl_options.certfile = {pki.server.cert}\n"
        f"ssl_options.keyfile = {pki.server.key}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
    )


@pytest.fixture(scope="module")
def brokers(pki: TestPki) -> Iterator[tuple[nodes.Node, nodes.Node]]:
    base = nodes.scratch_dir()
    private, public = nodes.node("hybridq-lt", 5723, base), nodes.node("hybridq-lu", 5724, base)
    try:
        for n in (private, public):
            nodes.start(n, config=tls_listener(pki, n.port + TLS_OFFSET))
            environment.create_vhost(VHOST, management=n.management, ports=(n.port,))
        yield private, public
    finally:
        for n in (private, public):
            nodes.stop(n)
        shutil.rmtree(base, ignore_errors=True)


def tls_url(n: nodes.Node) -> str:
    """The node's TLS port, by the name its certificate carries."""
    return f"amqps://guest:guest@localhost:{n.port + TLS_OFFSET}/{VHOST}"


def tls_env(pki: TestPki) -> dict[str, str]:
    return {
        "AMQP_CA_FILE": str(pki.ca),
        "AMQP_CERT_FILE": str(pki.client.cert),
        "AMQP_KEY_FILE": str(pki.client.key),
    }


def link(
    action: str,
    brokers: tuple[nodes.Node, nodes.Node],
    pki: TestPki,
    shovel_ca: Path | None,
    private_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    private, public = brokers
    shovel = (
        [
            "--shovel-ca-file",
            str(shovel_ca),
            "--shovel-cert-file",
            str(pki.client.cert),
            "--shovel-key-file",
            str(pki.client.key),
            "--queue-type",
            broker_under_test().queue_type,
        ]
        if action == "setup" and shovel_ca is not None
        else []
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridq_cli",
            "link",
            action,
            "--private",
            private_url or tls_url(private),
            "--public",
            tls_url(public),
            "--private-admin",
            f"http://guest:guest@127.0.0.1:{private.management_port}",
            "--public-admin",
            f"http://guest:guest@127.0.0.1:{public.management_port}",
            *shovel,
        ],
        env={**os.environ, **tls_env(pki)},  # the command's own connections verify too
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _management(n: nodes.Node, path: str) -> Any:
    got = httpx.get(f"{n.management}/api/{path}", auth=("guest", "guest"), timeout=10)
    got.raise_for_status()
    return got.json()


@pytest.fixture(scope="module")
def amqp_url(brokers: tuple[nodes.Node, nodes.Node]) -> str:
    """The services' AMQP_URL (router, status, private worker): the private broker, TLS."""
    return tls_url(brokers[0])


@pytest.fixture(scope="module")
def linked_stack(
    brokers: tuple[nodes.Node, nodes.Node],
    pki: TestPki,
    stack_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    done = link("setup", brokers, pki, pki.ca)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "over verified TLS" in done.stdout
    stack = Stack(
        {**stack_env, **tls_env(pki)},
        tmp_path_factory.mktemp("link-tls-logs"),
        per_service={"public_worker": {"AMQP_URL": tls_url(brokers[1])}},
    )
    stack.start()
    try:
        stack.wait_ready(60)
        yield stack
    finally:
        codes = stack.stop()
        assert set(codes.values()) == {0}, codes


def _client_url(n: nodes.Node, pki: TestPki) -> str:
    return with_files(tls_url(n), ca=pki.ca, cert=pki.client.cert, key=pki.client.key)


def _define_shovels(public: nodes.Node, pki: TestPki, private_url: str) -> None:
    """The link's shovels on `public`, with the URIs `link setup` builds for `private_url`
    (here the command itself refuses to go on with a broker it cannot verify)."""
    sides = {PRIVATE: Side.parse(private_url, None), PUBLIC: Side.parse(tls_url(public), None)}
    shovel_tls = ShovelTLS(str(pki.ca), str(pki.client.cert), str(pki.client.key))
    for shovel in SHOVELS:
        put = httpx.put(
            f"{public.management}/api/parameters/shovel/{VHOST}/{shovel.name}",
            json={"value": _shovel_value(shovel, sides, 1, shovel_tls)},
            auth=("guest", "guest"),
            timeout=10,
        )
        put.raise_for_status()


async def _ran_on(stack: Stack, job_id: str) -> set[str]:
    return {e["site"] for e in await events(stack.api, job_id) if e["type"] == "JobStarted"}


async def test_a_public_job_crosses_verified_tls_and_back(
    brokers: tuple[nodes.Node, nodes.Node], pki: TestPki, linked_stack: Stack
) -> None:
    private, public = brokers
    for parameter in _management(public, f"parameters/shovel/{VHOST}"):
        value = parameter["value"]
        uri = value["dest-uri"] if value["src-uri"].startswith("amqp:///") else value["src-uri"]
        assert uri.startswith(f"amqps://guest:guest@localhost:{private.port + TLS_OFFSET}/")
        assert f"cacertfile={pki.ca}" in uri
        assert "verify=verify_peer" in uri
    [job_id] = await submit(_client_url(private, pki), job("noop", target_cloud="public"))
    assert (await wait_for(linked_stack.api, job_id, timeout=60))["status"] == "succeeded"
    assert await _ran_on(linked_stack, job_id) == {"public"}  # there and back over the link
    report = link("status", brokers, pki, None)
    assert report.returncode == 0, report.stdout + report.stderr
    assert report.stdout.count("running") == 6
    connections = await _connections(private)
    assert all(c["ssl"] for c in connections), [(c["name"], c["ssl"]) for c in connections]


async def _connections(n: nodes.Node) -> list[dict[str, Any]]:
    """The vhost's connections once the management API lists the shovels' (its figures are
    sampled every second)."""
    for _ in range(30):
        connections: list[dict[str, Any]] = _management(n, f"vhosts/{VHOST}/connections")
        names = [
            str(c.get("client_properties", {}).get("connection_name", "")) for c in connections
        ]
        if sum("shovel" in name.lower() for name in names) >= len(SHOVELS):
            return connections
        await asyncio.sleep(0.5)
    raise AssertionError(f"the shovels' connections are not listed: {connections}")


@pytest.mark.parametrize("fault", ["wrong CA", "wrong host name"])
async def test_a_shovel_that_cannot_verify_the_private_broker_does_not_come_up(
    fault: str, brokers: tuple[nodes.Node, nodes.Node], pki: TestPki, linked_stack: Stack
) -> None:
    private, public = brokers
    if fault == "wrong CA":  # a CA that did not sign the private broker's certificate
        done = link("setup", brokers, pki, pki.wrong_ca)
        assert done.returncode == 0, done.stdout + done.stderr  # the shovels are defined anew
    else:  # the right CA, the broker by an address its certificate (localhost) does not name
        by_address = f"amqps://guest:guest@127.0.0.1:{private.port + TLS_OFFSET}/{VHOST}"
        done = link("setup", brokers, pki, pki.ca, private_url=by_address)
        assert done.returncode != 0  # the command's own connection refuses it, in one line
        assert "does not name this host" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        _define_shovels(public, pki, by_address)  # the URIs `setup` builds for it, defined anyway
    try:
        [job_id] = await submit(_client_url(private, pki), job("noop", target_cloud="public"))
        await asyncio.sleep(3)  # the old shovels are replaced
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # and none of the new ones ever runs
            report = link("status", brokers, pki, None)
            assert report.returncode != 0, report.stdout
            assert " running " not in report.stdout, report.stdout
            await asyncio.sleep(1)
        view = await wait_for(linked_stack.api, job_id, {"queued"})
        assert view["status"] == "queued"  # nothing crossed: the job waits on the private side
        depth = _management(private, f"queues/{VHOST}/jobs.public")
        assert depth.get("messages", 0) + depth.get("messages_unacknowledged", 0) >= 1
    finally:
        restored = link("setup", brokers, pki, pki.ca)
        assert restored.returncode == 0, restored.stdout + restored.stderr
    assert (await wait_for(linked_stack.api, job_id, timeout=90))["status"] == "succeeded"
    assert await _ran_on(linked_stack, job_id) == {"public"}
