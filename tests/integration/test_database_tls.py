"""`DATABASE_URL` with libpq's `sslmode=verify-full` (contract §1, TLS), on a Postgres 15
instance of the test's own with TLS on (tests/faults/servers.py) and a certificate for
`localhost` signed by a CA the test makes: the right root certificate connects over TLS,
migrations included; a root that did not sign the server's certificate, or a host name it
does not name, is refused. The machine's own server is not touched."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from services.router.ledger_store import PostgresLedgerStore
from services.status.migrate import upgrade
from shared.database import make_engine
from tests.certificates import TestPki, make_pki
from tests.faults.servers import PrivatePostgres

pytestmark = pytest.mark.connected


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_pki(tmp_path_factory.mktemp("pki"), ["localhost"])


@pytest.fixture(scope="module")
def postgres(pki: TestPki) -> Iterator[PrivatePostgres]:
    base = Path(tempfile.mkdtemp(prefix="hybridq-tls-postgres-"))  # removed by stop()
    server = PrivatePostgres(base)
    keys = base / "keys"  # the server's key: owned by postgres, 0600, as Postgres demands
    keys.mkdir()
    for source in (pki.server.cert, pki.server.key):
        shutil.copy(source, keys / source.name)
        shutil.chown(keys / source.name, "postgres", "postgres")
    (keys / pki.server.key.name).chmod(0o600)
    shutil.chown(keys, "postgres", "postgres")
    try:
        server.start(
            f"-c ssl=on -c ssl_cert_file={keys / pki.server.cert.name} "
            f"-c ssl_key_file={keys / pki.server.key.name}"
        )
        yield server
    finally:
        server.stop()


def _url(server: PrivatePostgres, host: str, root: Path, database: str = "postgres") -> str:
    return (
        f"postgresql+asyncpg://postgres@{host}:{server.port}/{database}"
        f"?sslmode=verify-full&sslrootcert={root}"
    )


async def test_verify_full_with_the_right_root_connects_over_tls(
    postgres: PrivatePostgres, pki: TestPki
) -> None:
    engine = make_engine(_url(postgres, "localhost", pki.ca), pool_size=1)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            ).one()
        assert row.ssl is True
    finally:
        await engine.dispose()


async def test_migrations_and_the_router_ledger_use_it(
    postgres: PrivatePostgres, pki: TestPki
) -> None:
    postgres.create_database("hq_tls")
    url = _url(postgres, "localhost", pki.ca, "hq_tls")
    await asyncio.to_thread(upgrade, url)  # alembic's env.py: the same engine factory
    ledger = PostgresLedgerStore(url)
    try:
        assert await ledger.known("never-seen") is False  # the ledger's table is there
    finally:
        await ledger._engine.dispose()


async def test_a_root_that_did_not_sign_the_server_is_refused(
    postgres: PrivatePostgres, pki: TestPki
) -> None:
    engine = make_engine(_url(postgres, "localhost", pki.wrong_ca), pool_size=1)
    try:
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()


async def test_a_host_name_the_certificate_does_not_name_is_refused(
    postgres: PrivatePostgres, pki: TestPki
) -> None:
    engine = make_engine(_url(postgres, "127.0.0.1", pki.ca), pool_size=1)
    try:
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
