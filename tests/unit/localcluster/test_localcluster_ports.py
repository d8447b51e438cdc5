from __future__ import annotations

import socket
from pathlib import Path

import pytest

from llmscale.errors import EnvironmentSetupError
from llmscale_tools.localcluster.ports import ClusterPorts, check_ports_free, port_in_use


def test_default_ports_are_distinct_and_valid() -> None:
    ports = ClusterPorts()
    ports.validate()
    assert ports.prometheus == 19090  # interfaces.md promises this URL
    assert len(set(ports.by_component().values())) == len(ports.by_component())


def test_two_components_on_one_port_is_rejected() -> None:
    with pytest.raises(EnvironmentSetupError, match="port 19443 is given to both"):
        ClusterPorts(scheduler=19443).validate()


def test_port_out_of_range_is_rejected() -> None:
    with pytest.raises(EnvironmentSetupError, match="kwok: 80 is outside"):
        ClusterPorts(kwok=80).validate()


def test_a_listening_socket_is_a_clash_named_in_one_line() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use(port)
        with pytest.raises(EnvironmentSetupError) as exc:
            check_ports_free([("kube-apiserver", port)])
    message = str(exc.value)
    assert f"port {port}" in message and "kube-apiserver" in message and "\n" not in message
    assert not port_in_use(port)


def test_a_shifted_cluster_uses_other_ports_and_another_pod_range() -> None:
    default, second = ClusterPorts(), ClusterPorts().shifted(10000)
    second.validate()
    assert second.apiserver == default.apiserver + 10000
    assert second.pod_cidr == "127.74.0.0/16" and default.pod_cidr == "127.64.0.0/16"
    assert ClusterPorts().shifted(5000).pod_cidr == "127.69.0.0/16"
    assert not set(default.by_component().values()) & set(second.by_component().values())


def test_the_environment_names_an_isolated_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmscale_tools.localcluster.cluster import LocalCluster

    monkeypatch.setenv("LLMSCALE_LOCALCLUSTER_ROOT", str(tmp_path / "lc"))
    monkeypatch.setenv("LLMSCALE_LOCALCLUSTER_PORT_OFFSET", "9000")
    cluster = LocalCluster.from_environment(tmp_path / "ignored")
    assert cluster.state_dir == (tmp_path / "lc" / ".localcluster").resolve()
    # 19090 (the default Prometheus port) + 9000; pod range 127.x moved by 9000 // 1000 = 9
    assert cluster.ports.prometheus == 28090
    assert cluster.ports.pod_cidr.split(".")[1] == str(int(ClusterPorts().pod_cidr.split(".")[1]) + 9)


def test_without_the_environment_the_default_cluster_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmscale_tools.localcluster.cluster import LocalCluster

    monkeypatch.delenv("LLMSCALE_LOCALCLUSTER_ROOT", raising=False)
    monkeypatch.delenv("LLMSCALE_LOCALCLUSTER_PORT_OFFSET", raising=False)
    cluster = LocalCluster.from_environment(tmp_path)
    assert cluster.state_dir == (tmp_path / ".localcluster").resolve()
    assert cluster.ports == ClusterPorts()


def test_a_bad_port_offset_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmscale.errors import UserInputError
    from llmscale_tools.localcluster.cluster import LocalCluster

    monkeypatch.setenv("LLMSCALE_LOCALCLUSTER_PORT_OFFSET", "nine")
    with pytest.raises(UserInputError, match="LLMSCALE_LOCALCLUSTER_PORT_OFFSET: value 'nine' is invalid"):
        LocalCluster.from_environment(tmp_path)
