"""Certificate authorities and certificates made by the test (the `cryptography` package),
for brokers and databases with a TLS listener of the test's own.

`Authority.issue` signs a certificate for the names given (DNS names, or IP addresses),
usable by a server and a client alike; `write` puts the PEM files where a broker or a
service reads them (world-readable: a RabbitMQ node started by devtools/nodes.py runs as
the `rabbitmq` user).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files in one folder."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Authority:
    name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str) -> Authority:
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(name, key, certificate)

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        path.chmod(0o644)
        return path

    def issue(self, folder: Path, stem: str, names: list[str]) -> Issued:
        """A certificate for `names` (the first is the common name), signed by this CA."""
        key = _key()
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        cert_path.chmod(0o644)
        key_path.chmod(0o644)  # read by a broker running as another user; a test's own key
        return Issued(cert_path, key_path)


@dataclass(frozen=True)
class TestPki:
    """The CA that signs the brokers' and clients' certificates, and one that signs nothing
    they use (the wrong CA)."""

    __test__ = False  # not a test class for pytest

    folder: Path
    ca: Path
    wrong_ca: Path
    server: Issued
    client: Issued


def make_pki(folder: Path, server_names: list[str] | None = None) -> TestPki:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    authority = Authority.create("hybridq test CA")
    stranger = Authority.create("hybridq test CA")  # the same name, another key
    return TestPki(
        folder,
        authority.write_ca(folder / "ca.pem"),
        stranger.write_ca(folder / "wrong-ca.pem"),
        authority.issue(folder, "server", server_names or ["localhost"]),
        authority.issue(folder, "client", ["hybridq-client"]),
    )
