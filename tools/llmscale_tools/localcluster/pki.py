"""The local control plane's PKI: one CA, serving and client certificates, kubeconfigs.

Keys are ECDSA P-256 (fast to generate, so every `cluster up` makes fresh ones) except the
service-account signing key, which is RSA because every Kubernetes token consumer accepts RS256.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import ipaddress
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Names the apiserver answers to: loopback plus the in-cluster service names and the first
# address of the service CIDR (what a pod would use; nothing routes it here, but clients check).
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
APISERVER_IPS = ("127.0.0.1", "10.96.0.1")
CERT_VALIDITY = datetime.timedelta(days=365)

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclasses.dataclass(frozen=True)
class ClientIdentity:
    """A client certificate's subject: CN is the user, O entries are the groups."""

    file_stem: str
    common_name: str
    organizations: tuple[str, ...] = ()


ADMIN = ClientIdentity("admin", "llmscale-admin", ("system:masters",))
CONTROLLER_MANAGER = ClientIdentity("controller-manager", "system:kube-controller-manager")
SCHEDULER = ClientIdentity("scheduler", "system:kube-scheduler")
# The apiserver's identity towards aggregated API servers (front proxy); signed by the same CA.
FRONT_PROXY = ClientIdentity("front-proxy-client", "front-proxy-client")
CLIENT_IDENTITIES = (ADMIN, CONTROLLER_MANAGER, SCHEDULER, FRONT_PROXY)


@dataclasses.dataclass(frozen=True)
class PKIPaths:
    """Where `generate_pki` writes each file (all PEM)."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def service_account_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def service_account_public_key(self) -> Path:
        return self.directory / "sa.pub"

    def client_cert(self, identity: ClientIdentity) -> Path:
        return self.directory / f"{identity.file_stem}.crt"

    def client_key(self, identity: ClientIdentity) -> Path:
        return self.directory / f"{identity.file_stem}.key"

    def kubeconfig(self, identity: ClientIdentity) -> Path:
        return self.directory / f"{identity.file_stem}.kubeconfig"


def _new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: _PrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any, now: datetime.datetime) -> Any:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # a minute of slack for clocks that disagree by a little
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + CERT_VALIDITY)
    )


def _issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    *,
    server_dns: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
    client: bool = False,
    now: datetime.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_ec_key()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
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
    )
    if server_dns or server_ips:
        alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in server_dns]
        alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert: x509.Certificate = builder.sign(ca_key, hashes.SHA256())
    return cert, key


def generate_pki(paths: PKIPaths, *, now: datetime.datetime | None = None) -> None:
    """Write a fresh CA, the apiserver serving pair, client pairs and the SA key pair."""
    now = now or datetime.datetime.now(datetime.UTC)
    paths.directory.mkdir(parents=True, exist_ok=True)
    ca_key = _new_ec_key()
    ca_subject = _name("llmscale-localcluster-ca")
    ca_cert: x509.Certificate = (
        _builder(ca_subject, ca_subject, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(paths.ca_key, ca_key)
    _write_cert(paths.ca_cert, ca_cert)

    cert, key = _issue(
        ca_cert,
        ca_key,
        _name("kube-apiserver"),
        server_dns=APISERVER_DNS_NAMES,
        server_ips=APISERVER_IPS,
        now=now,
    )
    _write_key(paths.apiserver_key, key)
    _write_cert(paths.apiserver_cert, cert)

    for identity in CLIENT_IDENTITIES:
        cert, key = _issue(
            ca_cert, ca_key, _name(identity.common_name, identity.organizations), client=True, now=now
        )
        _write_key(paths.client_key(identity), key)
        _write_cert(paths.client_cert(identity), cert)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(paths.service_account_key, sa_key)
    paths.service_account_public_key.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def pki_is_usable(paths: PKIPaths, *, now: datetime.datetime | None = None) -> bool:
    """True when every file `generate_pki` writes exists and no certificate expires within a day."""
    now = now or datetime.datetime.now(datetime.UTC)
    certificates = [paths.ca_cert, paths.apiserver_cert, *(paths.client_cert(i) for i in CLIENT_IDENTITIES)]
    keys = [
        paths.ca_key,
        paths.apiserver_key,
        paths.service_account_key,
        paths.service_account_public_key,
        *(paths.client_key(i) for i in CLIENT_IDENTITIES),
    ]
    if not all(p.is_file() for p in [*certificates, *keys]):
        return False
    try:
        for path in certificates:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            if cert.not_valid_after_utc - now < datetime.timedelta(days=1):
                return False
    except ValueError:
        return False
    return True


def render_kubeconfig(
    server_url: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, *, user: str
) -> dict[str, Any]:
    """A self-contained kubeconfig (certificates embedded) for one client identity."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "llmscale-local",
                "cluster": {"server": server_url, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)},
            }
        ],
        "contexts": [{"name": "llmscale-local", "context": {"cluster": "llmscale-local", "user": user}}],
        "current-context": "llmscale-local",
        "preferences": {},
    }


def write_kubeconfig(paths: PKIPaths, identity: ClientIdentity, server_url: str, target: Path) -> None:
    """Write `identity`'s kubeconfig to `target` (mode 0600: it holds a private key)."""
    config = render_kubeconfig(
        server_url,
        paths.ca_cert.read_bytes(),
        paths.client_cert(identity).read_bytes(),
        paths.client_key(identity).read_bytes(),
        user=identity.common_name,
    )
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    target.chmod(0o600)
