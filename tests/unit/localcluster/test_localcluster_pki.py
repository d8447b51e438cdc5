from __future__ import annotations

import base64
import datetime
import ipaddress
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from llmscale_tools.localcluster.pki import (
    ADMIN,
    SCHEDULER,
    PKIPaths,
    generate_pki,
    pki_is_usable,
    write_kubeconfig,
)


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificates_chain_to_the_ca_and_carry_identities(tmp_path: Path) -> None:
    paths = PKIPaths(tmp_path / "pki")
    generate_pki(paths)
    ca = _load(paths.ca_cert)
    server = _load(paths.apiserver_cert)
    admin = _load(paths.client_cert(ADMIN))
    for cert in (server, admin):
        assert cert.issuer == ca.subject
        public_key = ca.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        cert.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    groups = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["system:masters"]
    scheduler_cn = _load(paths.client_cert(SCHEDULER)).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert scheduler_cn[0].value == "system:kube-scheduler"
    assert paths.service_account_key.stat().st_mode & 0o077 == 0
    assert b"PUBLIC KEY" in paths.service_account_public_key.read_bytes()


def test_kubeconfig_embeds_credentials(tmp_path: Path) -> None:
    paths = PKIPaths(tmp_path / "pki")
    generate_pki(paths)
    target = tmp_path / "kubeconfig"
    write_kubeconfig(paths, ADMIN, "https://127.0.0.1:19443", target)
    config = yaml.safe_load(target.read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:19443"
    ca_pem = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca_pem == paths.ca_cert.read_bytes()
    assert config["users"][0]["name"] == "llmscale-admin"
    assert target.stat().st_mode & 0o077 == 0


def test_pki_is_reused_only_while_complete_and_not_about_to_expire(tmp_path: Path) -> None:
    paths = PKIPaths(tmp_path / "pki")
    assert not pki_is_usable(paths)
    generate_pki(paths)
    assert pki_is_usable(paths)
    paths.client_key(SCHEDULER).unlink()
    assert not pki_is_usable(paths)
    generate_pki(paths, now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=365))
    assert not pki_is_usable(paths)  # expires within the day
