"""TLS for a listener: a server SSLContext from PEM files, and a self-signed certificate when
asked for and none exists yet (as Iggy's `[tcp.tls] self_signed` does).

Client certificates (mutual TLS) follow Kafka's `ssl.client.auth`: "none" (not asked for),
"requested" (asked for; a client without one still connects, one that sends an untrusted one
is refused) or "required" (no connection without a certificate `ca_file` vouches for). A
verified certificate names its holder by the common name of its subject (`common_name`).

Generating needs the `cryptography` package (`pip install 'pyggy[tls]'`), imported only then.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509

SELF_SIGNED_DAYS = 365
CLIENT_AUTH = ("none", "requested", "required")


class TlsError(ValueError):
    """A TLS setting that cannot work (missing or unreadable files, no cryptography)."""


def server_context(cert_file: str | Path, key_file: str | Path, ca_file: str | Path = "",
                   client_auth: str = "none") -> ssl.SSLContext:
    """A server-side context (TLS 1.2 or later) presenting `cert_file` (PEM: the certificate,
    then any intermediates) with the private key in `key_file`; with `client_auth` other than
    "none", clients' certificates are asked for and checked against the CAs in `ca_file`."""
    if client_auth not in CLIENT_AUTH:
        raise TlsError(f"client_auth must be one of {', '.join(CLIENT_AUTH)}")
    paths = (cert_file, key_file, ca_file) if client_auth != "none" else (cert_file, key_file)
    for path in paths:
        if not Path(path).is_file():
            raise TlsError(f"{path}: not found")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"cannot load certificate {cert_file} with key {key_file}: {e}") from None
    if client_auth != "none":
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as e:
            raise TlsError(f"cannot load the client CA file {ca_file}: {e}") from None
        context.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" \
            else ssl.CERT_OPTIONAL
    return context


def common_name(certificate: dict[str, Any] | None) -> str | None:
    """The subject's common name of a verified peer certificate (`SSLObject.getpeercert()`),
    None without one (the last CN if a subject has several, as most TLS servers take it)."""
    if not certificate:
        return None
    names = [value for rdn in certificate.get("subject", ()) for key, value in rdn
             if key == "commonName"]
    return names[-1] if names else None


def ensure_self_signed(cert_file: str | Path, key_file: str | Path,
                       hosts: Iterable[str]) -> bool:
    """Write a new self-signed certificate and key unless `cert_file` exists; True if written."""
    if Path(cert_file).exists():
        return False
    generate_self_signed(cert_file, key_file, hosts)
    return True


def generate_self_signed(cert_file: str | Path, key_file: str | Path, hosts: Iterable[str],
                         days: int = SELF_SIGNED_DAYS) -> None:
    """An ECDSA P-256 certificate for `hosts` (DNS names and IP addresses, the first one is the
    subject's CN), valid for `days`; the key file is readable by its owner only."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise TlsError("a self-signed certificate needs the cryptography package: "
                       "pip install 'pyggy[tls]' (or set cert_file and key_file)") from None
    names = list(dict.fromkeys(h for h in hosts if h))
    if not names:
        raise TlsError("a self-signed certificate needs at least one host name")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pyggy self-signed")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(subject_alt_names(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write(Path(key_file), key_pem, 0o600)
    _write(Path(cert_file), cert.public_bytes(serialization.Encoding.PEM), 0o644)


def subject_alt_names(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    """The SAN extension naming `hosts`: IP addresses as such, anything else as a DNS name."""
    from cryptography import x509

    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(sans)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write whole or not at all (a crash never leaves half a certificate)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
