"""Certificates and keys for a local cluster: CAs, serving and client certs, the SA key.
Pure key/cert making with `cryptography`; writes files only through `write_pki`; starts nothing.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    """A certificate with its private key, both PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class ClientIdentity:
    """Who a client certificate says it is: CN is the user, O entries are its groups."""

    file_stem: str
    common_name: str
    organizations: tuple[str, ...] = ()


@dataclass(frozen=True)
class PKIPlan:
    """What certificates a cluster needs: the serving cert's names and the client identities."""

    server_dns: tuple[str, ...]
    server_ips: tuple[str, ...]
    clients: tuple[ClientIdentity, ...] = field(default_factory=tuple)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def make_ca(common_name: str) -> KeyPair:
    """A self-signed CA that may sign leaf certificates only."""
    key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + 10 * VALIDITY)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(
    ca: KeyPair,
    *,
    common_name: str,
    organizations: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
) -> KeyPair:
    """A leaf certificate signed by `ca`, for serving, for client auth, or both."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError(f"CA {common_name!r}: unsupported key type {type(ca_key).__name__}")
    key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def service_account_key() -> bytes:
    """The RSA key the apiserver signs and verifies service-account tokens with (PEM, PKCS8)."""
    return _key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def write_pair(directory: Path, stem: str, pair: KeyPair) -> None:
    _write(directory / f"{stem}.crt", pair.cert_pem, 0o644)
    _write(directory / f"{stem}.key", pair.key_pem, 0o600)


def write_pki(directory: Path, plan: PKIPlan) -> None:
    """Make every file of `plan` under `directory`, keeping files that already exist.

    Files: server-ca, client-ca, apiserver (serving), one client pair per identity, sa.key/sa.pub.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cas: dict[str, KeyPair] = {}
    for stem, cn in (("server-ca", "pykubelet-server-ca"), ("client-ca", "pykubelet-client-ca")):
        if not (directory / f"{stem}.crt").exists():
            write_pair(directory, stem, make_ca(cn))
        cas[stem] = KeyPair(
            (directory / f"{stem}.crt").read_bytes(), (directory / f"{stem}.key").read_bytes()
        )
    if not (directory / "apiserver.crt").exists():
        serving = issue(
            cas["server-ca"],
            common_name="kube-apiserver",
            server=True,
            dns_names=plan.server_dns,
            ip_addresses=plan.server_ips,
        )
        write_pair(directory, "apiserver", serving)
    for ident in plan.clients:
        if not (directory / f"{ident.file_stem}.crt").exists():
            pair = issue(
                cas["client-ca"],
                common_name=ident.common_name,
                organizations=ident.organizations,
                client=True,
            )
            write_pair(directory, ident.file_stem, pair)
    if not (directory / "sa.key").exists():
        key_pem = service_account_key()
        key = serialization.load_pem_private_key(key_pem, password=None)
        pub = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write(directory / "sa.key", key_pem, 0o600)
        _write(directory / "sa.pub", pub, 0o644)


def node_identity(node_name: str) -> ClientIdentity:
    """The client identity the Node authorizer recognises for `node_name`."""
    return ClientIdentity(f"node-{node_name}", f"system:node:{node_name}", ("system:nodes",))


CONTROL_PLANE_CLIENTS: tuple[ClientIdentity, ...] = (
    ClientIdentity("admin", "kubernetes-admin", ("system:masters",)),
    ClientIdentity("controller-manager", "system:kube-controller-manager"),
    ClientIdentity("scheduler", "system:kube-scheduler"),
    ClientIdentity("apiserver-kubelet-client", "kube-apiserver"),
    ClientIdentity("kube-proxy", "system:kube-proxy"),
)
