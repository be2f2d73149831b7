"""Services over `amqps://`, verified (contract §1, TLS): on a RabbitMQ node of the test's own
whose only AMQP port for the services is a TLS listener that asks for a client certificate,
with a CA and certificates the test makes. The right CA runs a job end to end; a CA that
did not sign the broker's certificate, or a host name the certificate does not name, is
refused at start with one log line naming the URL (password hidden) and the cause, and the
process exits non-zero. The machine's own node is not touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.stack import Stack
from shared.service import EXIT_TLS_REFUSED
from shared.tls import with_files
from tests import private_node
from tests.certificates import TestPki, make_pki
from tests.e2e.client import events, job, submit, wait_for

pytestmark = pytest.mark.connected


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_pki(tmp_path_factory.mktemp("pki"), ["localhost"])


def tls_listener(pki: TestPki, port: int) -> str:
    """rabbitmq.conf lines: a TLS listener that verifies its clients' certificates too."""
    return (
        f"listeners.ssl.default = 127.0.0.1:{port}\n"
        f"ssl_options.cacertfile = {pki.ca}\n"
        f"ssl_options.certfile = {pki.server.cert}\n"
        f"ssl_options.keyfile = {pki.server.key}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
    )


@pytest.fixture(scope="module")
def tls_port(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = private_node.free_port()
    node = private_node.start(tmp_path_factory.mktemp("rabbit-tls"), tls_listener(pki, port))
    try:
        yield port
    finally:
        node.stop()


@pytest.fixture(scope="module")
def amqp_url(tls_port: int) -> str:
    """The services' AMQP_URL: the TLS port, by the name its certificate carries."""
    return f"amqps://guest:guest@localhost:{tls_port}/"


def tls_env(pki: TestPki, ca: Path | None = None) -> dict[str, str]:
    return {
        "AMQP_CA_FILE": str(ca or pki.ca),
        "AMQP_CERT_FILE": str(pki.client.cert),
        "AMQP_KEY_FILE": str(pki.client.key),
    }


@pytest.fixture(scope="module")
def stack_env(stack_env: dict[str, str], pki: TestPki) -> dict[str, str]:
    return {**stack_env, **tls_env(pki)}


async def test_services_over_verified_tls_run_a_job(stack: Stack, pki: TestPki) -> None:
    # the client verifies too: aiormq's own URL parameters, as the services' settings set them
    client_url = with_files(
        stack.env["AMQP_URL"], ca=pki.ca, cert=pki.client.cert, key=pki.client.key
    )
    [job_id] = await submit(client_url, job("noop", target_cloud="private"))
    view = await wait_for(stack.api, job_id, timeout=60)
    assert view["status"] == "succeeded", view
    started = {e["site"] for e in await events(stack.api, job_id) if e["type"] == "JobStarted"}
    assert started == {"private"}


def _start_refused(service: str, amqp_url: str, env: dict[str, str]) -> tuple[int, list[str]]:
    """Run `python -m services.<service>` until it exits; its exit status and log lines."""
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        env={**os.environ, "AMQP_URL": amqp_url, **env},
        capture_output=True,
        text=True,
        timeout=30,  # refused within a second or two
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


def _the_one_line(lines: list[str]) -> str:
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    loud = [json.loads(line) for line in lines if line.startswith("{")]
    loud = [entry for entry in loud if entry["level"] in ("error", "critical")]
    assert len(loud) == 1, "\n".join(lines)
    message: str = loud[0]["msg"]
    return message


@pytest.mark.parametrize("service", ["router", "private_worker", "status"])
def test_a_ca_that_did_not_sign_the_broker_is_refused_at_start(
    service: str, pki: TestPki, tls_port: int, amqp_url: str, database_url: str
) -> None:
    code, lines = _start_refused(
        service, amqp_url, {**tls_env(pki, pki.wrong_ca), "DATABASE_URL": database_url}
    )
    assert code == EXIT_TLS_REFUSED, "\n".join(lines)
    line = _the_one_line(lines)
    assert f"amqps://guest:******@localhost:{tls_port}/" in line, line
    assert "not trusted" in line, line
    assert "guest:guest" not in "\n".join(lines)


def test_a_host_name_the_certificate_does_not_name_is_refused_at_start(
    pki: TestPki, tls_port: int, database_url: str
) -> None:
    by_address = f"amqps://guest:guest@127.0.0.1:{tls_port}/"  # the certificate: localhost
    code, lines = _start_refused(
        "public_worker", by_address, {**tls_env(pki), "DATABASE_URL": database_url}
    )
    assert code == EXIT_TLS_REFUSED, "\n".join(lines)
    line = _the_one_line(lines)
    assert f"amqps://guest:******@127.0.0.1:{tls_port}/" in line, line
    assert "does not name this host" in line, line
