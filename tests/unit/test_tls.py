"""TLS settings and translations (contract §1): what every service, the database engine and
the link's shovels are given. The connected proofs are tests/e2e/test_tls.py,
tests/integration/test_database_tls.py and tests/cluster/test_link_tls.py."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import typer
from aiormq.abc import SSLCerts
from aiormq.connection import SSLContextProvider
from yarl import URL

from hybridq_cli.link import ShovelTLS
from shared import tls
from shared.connection import CoalescingTransport
from shared.database import asyncpg_ssl, make_engine, without_libpq_tls
from shared.errors import TLSRefused
from shared.settings import RouterSettings, StatusSettings, WorkerSettings, load
from tests.certificates import TestPki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_pki(tmp_path_factory.mktemp("pki"), ["db.example", "localhost"])


def test_the_tls_files_go_into_every_amqps_node_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AMQP_URL", "amqps://u:p@a:5671/v, amqps://u:p@b:5671/v?cafile=/b-own.pem,amqp://u:p@c/v"
    )
    monkeypatch.setenv("AMQP_CA_FILE", "/etc/hq/ca.pem")
    monkeypatch.setenv("AMQP_CERT_FILE", "/etc/hq/me.crt")
    monkeypatch.setenv("AMQP_KEY_FILE", "/etc/hq/me.key")
    for kind in (RouterSettings, WorkerSettings, StatusSettings):
        a, b, c = load(kind).amqp_url.split(",")
        assert dict(URL(a).query) == {
            "cafile": "/etc/hq/ca.pem",
            "certfile": "/etc/hq/me.crt",
            "keyfile": "/etc/hq/me.key",
        }
        assert URL(b).query["cafile"] == "/b-own.pem"  # a node's own parameter is kept
        assert URL(b).query["certfile"] == "/etc/hq/me.crt"
        assert c == "amqp://u:p@c/v"  # plain AMQP has no TLS to configure


def test_no_tls_settings_leave_the_url_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqps://u:p@a:5671/v")
    assert load(WorkerSettings).amqp_url == "amqps://u:p@a:5671/v"


def test_secret_files_named_after_the_settings_are_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "AMQP_URL").write_text("amqps://u:secret@broker:5671/v")
    (tmp_path / "AMQP_CA_FILE").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "AMQP_KEY_FILE").write_text("-----BEGIN PRIVATE KEY-----\n")
    monkeypatch.setenv("HYBRIDQ_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("AMQP_KEY_FILE", "/from/the/environment.key")  # the environment wins
    monkeypatch.delenv("AMQP_URL", raising=False)
    monkeypatch.delenv("AMQP_CA_FILE", raising=False)
    settings = load(RouterSettings)
    assert settings.amqp_ca_file == tmp_path / "AMQP_CA_FILE"
    assert settings.amqp_key_file == Path("/from/the/environment.key")
    assert settings.amqp_cert_file is None
    assert URL(settings.amqp_url).query["cafile"] == str(tmp_path / "AMQP_CA_FILE")
    assert URL(settings.amqp_url).password == "secret"


def _provider(url: URL) -> SSLContextProvider:
    """aiormq's own provider, as `aiormq.Connection` makes it from the URL's query."""
    certs = SSLCerts(
        cafile=url.query.get("cafile"),
        capath=None,
        cadata=None,
        key=url.query.get("keyfile"),
        cert=url.query.get("certfile"),
        verify=url.query.get("no_verify_ssl", "0") == "0",
    )
    return SSLContextProvider(ssl_context=None, ssl_certs=certs, loop=asyncio.get_running_loop())


async def test_the_transport_refuses_tls_without_verification(pki: TestPki) -> None:
    # port 1: were the URL not refused first, this would be a connection error instead
    url = URL(f"amqps://u:secret@localhost:1/?cafile={pki.ca}&no_verify_ssl=1")
    with pytest.raises(TLSRefused) as refused:
        await CoalescingTransport().create(url, ssl_context_provider=_provider(url))
    assert "verification is off" in str(refused.value)
    assert "secret" not in str(refused.value)


async def test_the_transport_refuses_tls_files_it_cannot_load(tmp_path: Path) -> None:
    url = URL(f"amqps://u:p@localhost:1/?cafile={tmp_path / 'missing.pem'}")
    with pytest.raises(TLSRefused, match="cannot load the CA"):
        await CoalescingTransport().create(url, ssl_context_provider=_provider(url))


async def test_the_transport_verifies_with_the_urls_ca(pki: TestPki) -> None:
    """The context aiormq makes from the URL checks the chain and the host name (the
    connected tests show it refusing a wrong CA and a wrong name)."""
    url = URL(f"amqps://u:p@localhost:1/?cafile={pki.ca}")
    context = await _provider(url).get_context()
    assert tls.verifying(context)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    with pytest.raises(ConnectionError, match="onnect"):  # on to port 1, where nothing listens
        await CoalescingTransport().create(url, ssl_context_provider=_provider(url))


def test_a_refusal_is_one_line_naming_the_url_without_its_password() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_code, cause.verify_message = 62, "Hostname mismatch"
    wrapped = ConnectionError("transport")
    wrapped.__cause__ = cause
    refused = tls.refusal("amqps://hq:s3cret@rmq.example:5671/v", wrapped)
    assert refused is not None
    assert "\n" not in str(refused)
    assert "amqps://hq:******@rmq.example:5671/v" in str(refused)
    assert "does not name this host" in str(refused)
    assert tls.refusal("amqps://h/", ConnectionRefusedError(111, "refused")) is None


# ---- Postgres: libpq's TLS parameters as asyncpg's `ssl`


def test_verify_full_is_a_context_that_checks_chain_and_host(pki: TestPki) -> None:
    url = f"postgresql+asyncpg://u:p@db.example/hq?sslmode=verify-full&sslrootcert={pki.ca}"
    context = asyncpg_ssl(url)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "hybridq test CA"),),)
    ]


def test_verify_ca_checks_the_chain_only(pki: TestPki) -> None:
    context = asyncpg_ssl(f"postgresql+asyncpg://db/hq?sslmode=verify-ca&sslrootcert={pki.ca}")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert not context.check_hostname


def test_require_with_a_root_certificate_checks_the_chain_as_libpq_does(pki: TestPki) -> None:
    context = asyncpg_ssl(f"postgresql+asyncpg://db/hq?sslmode=require&sslrootcert={pki.ca}")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_a_client_certificate_is_loaded(pki: TestPki) -> None:
    context = asyncpg_ssl(
        f"postgresql+asyncpg://db/hq?sslmode=verify-full&sslrootcert={pki.ca}"
        f"&sslcert={pki.client.cert}&sslkey={pki.client.key}"
    )
    assert isinstance(context, ssl.SSLContext)
    with pytest.raises(FileNotFoundError):
        asyncpg_ssl(f"postgresql+asyncpg://db/hq?sslmode=verify-full&sslcert={pki.folder}/no")


def test_other_modes_are_asyncpgs_own_and_no_parameters_mean_none() -> None:
    assert asyncpg_ssl("postgresql+asyncpg://db/hq?sslmode=require") == "require"
    assert asyncpg_ssl("postgresql+asyncpg://db/hq?sslmode=disable") == "disable"
    assert asyncpg_ssl("postgresql+asyncpg://db/hq") is None
    with pytest.raises(ValueError, match="sslmode='verify'"):
        asyncpg_ssl("postgresql+asyncpg://db/hq?sslmode=verify")


def test_the_engine_gets_the_url_without_libpq_parameters(pki: TestPki) -> None:
    url = f"postgresql+asyncpg://u:p%40ss@db:5433/hq?sslmode=verify-full&sslrootcert={pki.ca}"
    assert without_libpq_tls(url).render_as_string(hide_password=False) == (
        "postgresql+asyncpg://u:p%40ss@db:5433/hq"
    )
    engine = make_engine(url, pool_size=2)
    try:
        assert engine.url.query == {}
        assert engine.url.password == "p@ss"
    finally:
        engine.sync_engine.dispose()


# ---- the link's shovels: TLS files on the public broker


def test_an_amqps_shovel_uri_verifies_the_private_broker() -> None:
    uri = URL(
        ShovelTLS("/etc/rabbitmq/private-ca.pem", "/etc/rabbitmq/link.crt", "/etc/rabbitmq/k").uri(
            "amqps://link:pw@rmq.private.example:5671/hybridq?cafile=/home/me/ca.pem"
        )
    )
    assert (uri.scheme, uri.host, uri.path) == ("amqps", "rmq.private.example", "/hybridq")
    assert dict(uri.query) == {
        "cacertfile": "/etc/rabbitmq/private-ca.pem",
        "certfile": "/etc/rabbitmq/link.crt",
        "keyfile": "/etc/rabbitmq/k",
        "verify": "verify_peer",
        "server_name_indication": "rmq.private.example",
    }  # this machine's own cafile is not the broker's


def test_an_amqps_shovel_needs_the_brokers_ca_and_plain_stays_plain() -> None:
    with pytest.raises(typer.Exit):
        ShovelTLS().uri("amqps://link:pw@rmq.private.example:5671/hybridq")
    assert ShovelTLS("/x").uri("amqp://link:pw@lab:5672/hybridq") == (
        "amqp://link:pw@lab:5672/hybridq"
    )
