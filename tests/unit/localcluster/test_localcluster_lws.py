"""The local cluster's LeaderWorkerSet controller: config, webhook certificate, admission objects."""

from __future__ import annotations

from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from llmscale_tools.localcluster import lws
from llmscale_tools.localcluster.layout import StateLayout
from llmscale_tools.localcluster.pki import generate_pki
from llmscale_tools.localcluster.ports import ClusterPorts


def layout(tmp_path: Path) -> StateLayout:
    state = StateLayout(tmp_path / ".localcluster")
    generate_pki(state.pki)
    return state


def test_webhook_certificate_is_for_loopback_and_signed_by_the_cluster_ca(tmp_path: Path) -> None:
    state = layout(tmp_path)
    lws.issue_webhook_certificate(state)
    cert = x509.load_pem_x509_certificate((lws.cert_dir(state) / "tls.crt").read_bytes())
    ca = x509.load_pem_x509_certificate(state.pki.ca_cert.read_bytes())
    assert cert.issuer == ca.subject
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))  # type: ignore[arg-type]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    assert (lws.cert_dir(state) / "tls.key").is_file()


def test_config_binds_loopback_without_leader_election_or_cert_rotation(tmp_path: Path) -> None:
    state = layout(tmp_path)
    ports = ClusterPorts().shifted(8000)
    config = yaml.safe_load(lws.config_yaml(state, ports))
    assert config["apiVersion"] == "config.lws.x-k8s.io/v1alpha1"
    assert config["leaderElection"] == {"leaderElect": False}
    assert config["internalCertManagement"] == {"enable": False}
    assert config["webhook"] == {"host": "127.0.0.1", "port": 27545, "certDir": str(lws.cert_dir(state))}
    assert config["health"]["healthProbeBindAddress"] == "127.0.0.1:27546"
    assert config["metrics"]["bindAddress"] == "127.0.0.1:27547"


def test_webhooks_point_at_loopback_and_only_look_at_lws_pods(tmp_path: Path) -> None:
    state = layout(tmp_path)
    mutating, validating = lws.webhook_configurations(state, ClusterPorts())
    assert mutating["kind"] == "MutatingWebhookConfiguration"
    assert validating["kind"] == "ValidatingWebhookConfiguration"
    for configuration in (mutating, validating):
        for webhook in configuration["webhooks"]:
            assert webhook["clientConfig"]["url"].startswith("https://127.0.0.1:19545/")
            assert webhook["failurePolicy"] == "Fail"
            if webhook["rules"][0]["resources"] == ["pods"]:
                expression = webhook["objectSelector"]["matchExpressions"][0]
                assert expression == {"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}
    paths = [w["clientConfig"]["url"].split(":19545")[1] for w in mutating["webhooks"]]
    assert paths == ["/mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset", "/mutate--v1-pod"]


def test_an_emulated_group_runs_the_emulator_in_the_leader_and_a_listener_in_workers() -> None:
    from llmscale_tools.localcluster import pod_processes

    rules = pod_processes.rule_commands("python")

    def pod(role: str) -> dict[str, object]:
        labels = {"llmscale.dev/runner": "emulator", "llmscale.dev/role": role}
        return {"metadata": {"name": f"big-0-{role}", "namespace": "a", "labels": labels}}

    assert pod_processes.command_for(pod("leader"), rules) == rules["emulator"]
    assert pod_processes.command_for(pod("worker"), rules) == rules["http-echo"]
