"""The one way hybridq makes a database engine: `make_engine(DATABASE_URL, **pool_options)`.

`DATABASE_URL` may carry libpq's TLS parameters (`sslmode=verify-full&sslrootcert=...`, as
psycopg and psql take them: contract §1). SQLAlchemy's asyncpg dialect hands every query
parameter to `asyncpg.connect` as a keyword, which has no `sslmode`, `sslrootcert`,
`sslcert` or `sslkey`; so they are taken out of the URL here and turned into asyncpg's
`ssl` argument: for `verify-ca` and `verify-full` an `ssl.SSLContext` that checks the
server's chain against `sslrootcert` (unset or `system`: the system's CAs) and, for
`verify-full`, its host name (`require` with `sslrootcert` checks the chain, as in libpq);
a client certificate when `sslcert` is given. The other modes (`disable`, `allow`,
`prefer`, `require`) are asyncpg's own, by name. The files are read when the engine is made:
a rotated certificate takes a restart.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

LIBPQ_TLS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword")
MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

SslArgument = ssl.SSLContext | str


def _one(query: Mapping[str, str | Sequence[str]], name: str) -> str | None:
    value = query.get(name)
    if value is None or isinstance(value, str):
        return value
    return value[-1] if value else None


def asyncpg_ssl(url: str | URL) -> SslArgument | None:
    """asyncpg's `ssl` argument for the libpq TLS parameters of `url` (None: none given,
    asyncpg's default). Raises ValueError for an `sslmode` libpq does not know, and
    what `ssl` raises for a root certificate, certificate or key it cannot load."""
    query = make_url(url).query
    mode = _one(query, "sslmode")
    root, cert = _one(query, "sslrootcert"), _one(query, "sslcert")
    if mode is None and root is None and cert is None:
        return None
    mode = mode or "prefer"
    if mode not in MODES:
        raise ValueError(f"DATABASE_URL: sslmode={mode!r} is not one of {', '.join(MODES)}")
    # libpq: `require` with a root certificate checks the chain, as `verify-ca` does
    verify = mode in ("verify-ca", "verify-full") or (mode == "require" and root is not None)
    if not verify and cert is None:
        return mode
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=None if root in (None, "system") else root
    )
    if mode != "verify-full":
        context.check_hostname = False
    if not verify:  # a client certificate, over TLS that does not check the server
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(cert, _one(query, "sslkey"), _one(query, "sslpassword"))
    return context


def without_libpq_tls(url: str | URL) -> URL:
    """`url` without the libpq TLS parameters (asyncpg would take them as keywords)."""
    return make_url(url).difference_update_query(LIBPQ_TLS)


def make_engine(url: str | URL, **options: Any) -> AsyncEngine:
    """`create_async_engine(url, **options)`, with `url`'s libpq TLS parameters as asyncpg's
    `ssl` (an explicit `connect_args={"ssl": ...}` in `options` wins)."""
    argument = asyncpg_ssl(url)
    connect_args = dict(options.pop("connect_args", None) or {})
    if argument is not None:
        connect_args.setdefault("ssl", argument)
    return create_async_engine(without_libpq_tls(url), connect_args=connect_args, **options)
