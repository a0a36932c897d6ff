"""A throw-away PKI for tests and trials (`peerlearn certs`): a CA and one certificate per peer and
client, named as peerlearn/security.py expects (the peer id as CN and DNS SAN)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from pathlib import Path

from peerlearn.security import ORCHESTRATOR_ID, SecurityError


def make_certificates(out: str | Path, peers: Iterable[str], days: int = 30,
                      clients: Iterable[str] = (ORCHESTRATOR_ID,)) -> dict[str, Path]:
    """A throw-away CA and one key + certificate per peer and client, for tests and trials.

    Writes ca.pem (+ ca.key), <id>.pem and <id>.key; peer certificates carry the id as CN and DNS SAN
    (server and client auth), the orchestrator's is a client certificate. Keys are ECDSA P-256,
    written with mode 0600. Returns {name: path}.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    written: dict[str, Path] = {}

    def write_key(name: str, key: ec.EllipticCurvePrivateKey) -> None:
        path = out / f"{name}.key"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
        written[f"{name}.key"] = path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peerlearn test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    written["ca.pem"] = out / "ca.pem"
    write_key("ca", ca_key)

    def issue(name: str, server: bool) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                .sign(ca_key, hashes.SHA256()))
        (out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        written[f"{name}.pem"] = out / f"{name}.pem"
        write_key(name, key)

    for name in peers:
        _check_name(name)
        issue(name, server=True)
    for name in clients:
        _check_name(name)
        issue(name, server=False)
    return written


def _check_name(name: str) -> None:
    ok = name and len(name) <= 63 and all(c.isalnum() or c == "-" for c in name) and not name.startswith("-")
    if not ok:
        raise SecurityError(f"{name!r} cannot be a certificate name: use letters, digits and '-' "
                            "(a DNS label)")
