"""TLS to the broker (contract §1): `amqps://` URLs, verified.

The CA, client certificate and key (`AMQP_CA_FILE`, `AMQP_CERT_FILE`, `AMQP_KEY_FILE`,
shared/settings.py) travel in each `amqps://` node URL as aiormq's own query parameters
(`cafile`, `certfile`, `keyfile`): every connection a service opens from its `AMQP_URL`
(its broker, queue depths, the cancellations feed) then uses them, with nothing else to pass
along. aiormq builds the context with `ssl.create_default_context`, which verifies the
peer's chain and its host name; `CoalescingTransport` (shared/connection.py) refuses a
context that does not (aiormq's `no_verify_ssl`), and `refusal` turns what the TLS layer
says into one line for the log.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from yarl import URL

from shared.errors import TLSRefused

FILE_PARAMETERS = {"ca": "cafile", "cert": "certfile", "key": "keyfile"}
"""aiormq's URL query parameters for the CA, the client certificate and its key."""

_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
_IP_MISMATCH = 64  # X509_V_ERR_IP_ADDRESS_MISMATCH


def is_tls(url: str | URL) -> bool:
    return URL(url).scheme == "amqps"


def with_files(amqp_url: str, *, ca: Path | None, cert: Path | None, key: Path | None) -> str:
    """`amqp_url` (one or several comma-separated node URLs) with the TLS files in each
    `amqps://` URL's query; a parameter a URL already has is kept (that node's own)."""
    files = {FILE_PARAMETERS["ca"]: ca, FILE_PARAMETERS["cert"]: cert, FILE_PARAMETERS["key"]: key}
    given = {name: str(path) for name, path in files.items() if path is not None}
    if not given:
        return amqp_url
    urls = []
    for raw in amqp_url.split(","):
        node = raw.strip()
        if node and is_tls(node):
            url = URL(node)
            node = str(url.update_query({k: v for k, v in given.items() if k not in url.query}))
        urls.append(node)
    return ",".join(u for u in urls if u)


def shown(url: str | URL) -> str:
    """The URL for a log line: the password hidden."""
    url = URL(url)
    return str(url.with_password("******") if url.password else url)


def verifying(context: ssl.SSLContext) -> bool:
    """Whether a client context checks the peer's chain and host name."""
    return context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def unverified(url: str | URL) -> TLSRefused:
    return TLSRefused(
        f"TLS to {shown(url)} refused: certificate verification is off (no_verify_ssl in "
        "the URL); hybridq always verifies the broker's certificate"
    )


def unloadable(url: str | URL, exc: BaseException) -> TLSRefused:
    return TLSRefused(
        f"TLS to {shown(url)} refused: cannot load the CA, certificate or key "
        f"(AMQP_CA_FILE, AMQP_CERT_FILE, AMQP_KEY_FILE): {exc}"
    )


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__
    return cause


def failed_in_tls(exc: BaseException) -> bool:
    return isinstance(exc, TLSRefused) or _ssl_cause(exc) is not None


def refusal(url: str | URL, exc: BaseException) -> TLSRefused | None:
    """The one-line refusal for a connection attempt that failed in TLS (a certificate not
    signed by the CA, one that does not name the host, a client certificate the broker
    refused, no TLS listener at that port), or None for any other failure."""
    if isinstance(exc, TLSRefused):
        return exc
    cause = _ssl_cause(exc)
    if cause is None:
        return None
    where = f"TLS to {shown(url)} refused"
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = cause.verify_message
        if cause.verify_code in (_HOSTNAME_MISMATCH, _IP_MISMATCH):
            return TLSRefused(
                f"{where}: the broker's certificate does not name this host ({detail})"
            )
        return TLSRefused(
            f"{where}: the broker's certificate is not trusted ({detail}): is AMQP_CA_FILE "
            "the CA that signed it?"
        )
    reason = cause.reason or str(cause)
    if "CERTIFICATE_REQUIRED" in reason or "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason:
        return TLSRefused(
            f"{where}: the broker refused this client's certificate ({reason}): check "
            "AMQP_CERT_FILE and AMQP_KEY_FILE"
        )
    return TLSRefused(f"{where}: TLS handshake failed ({reason}): is that port TLS?")
