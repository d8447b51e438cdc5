"""The local pod runner: one process per labelled pod, bound to the pod's loopback IP.

Run as `python -m llmscale_tools.localcluster.runner --kubeconfig K --pods-dir D`; `cluster up`
starts it. A watch thread feeds pod events into a queue; the main thread starts processes
as soon as a pod has an IP, writes the annotation `llmscale.dev/ready-at` once the process
accepts connections (KWOK marks the pod Ready at that time, never before it listens). When the
pod gets a deletion timestamp or disappears it runs the container's preStop sleep (the process
keeps serving), then sends SIGTERM, and SIGKILL once the pod's terminationGracePeriodSeconds
(counted from the deletion) is over. A process that exits on its own is logged and not
restarted: a crash must stay visible, not be papered over.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from llmscale_tools.localcluster import pod_processes as pp

log = logging.getLogger("llmscale.pod-runner")
TICK_SECONDS = 0.2
WATCH_TIMEOUT_SECONDS = 30


@dataclasses.dataclass
class PodProcess:
    key: str
    ip: str
    process: subprocess.Popen[bytes]
    log_path: Path
    pod: dict[str, Any]
    kill_at: float | None = None  # monotonic SIGKILL deadline once the pod is going away
    term_at: float | None = None  # monotonic time of the SIGTERM still to send (after preStop)
    announced: bool = False  # ready-at annotation written (the process accepted a connection)


class PodRunner:
    """Owns the processes; `handle` and `tick` are called from one thread only."""

    def __init__(self, core: Any, pods_dir: Path, rules: dict[str, list[str]]) -> None:
        self.core = core
        self.pods_dir = pods_dir
        self.rules = rules
        self.processes: dict[str, PodProcess] = {}  # pod uid -> process
        self.waiting: dict[str, dict[str, Any]] = {}  # uid -> pod whose IP is still held by a process
        self.node_labels: dict[str, dict[str, str]] = {}
        # pods whose process has exited: never started again (a kubelet would restart with
        # back-off; here a crash must stay visible in the pod log instead)
        self.exited: set[str] = set()

    def handle(self, pod: dict[str, Any], deleted: bool) -> None:
        uid = pp.pod_uid(pod)
        if deleted or not pp.wants_process(pod):
            self.waiting.pop(uid, None)
            if uid in self.processes and (deleted or pp.is_terminating(pod)):
                self._terminate(uid, pp.grace_seconds(pod))
            return
        if uid not in self.processes and uid not in self.exited:
            self._start(uid, pod)

    def forget_missing(self, present_uids: set[str]) -> None:
        """After a relist: pods that vanished while the watch was down are treated as deleted."""
        for uid in list(self.processes):
            if uid not in present_uids:
                self._terminate(uid, pp.DEFAULT_GRACE_SECONDS)
        for uid in list(self.waiting):
            if uid not in present_uids:
                del self.waiting[uid]
        self.exited &= present_uids

    def tick(self) -> None:
        self._announce_listening()
        now = time.monotonic()
        for uid, entry in list(self.processes.items()):
            status = entry.process.poll()
            if status is not None:
                if entry.kill_at is None:
                    log.error("process of pod %s exited with status %s; not restarting", entry.key, status)
                    with entry.log_path.open("a") as pod_log:
                        pod_log.write(f"[pod-runner] process exited with status {status}; not restarted\n")
                else:
                    log.info("process of pod %s stopped (status %s)", entry.key, status)
                del self.processes[uid]
                self.exited.add(uid)
            elif entry.kill_at is not None and now >= entry.kill_at:
                log.warning("process of pod %s ignored SIGTERM; SIGKILL", entry.key)
                entry.process.kill()
            elif entry.term_at is not None and now >= entry.term_at:
                log.info("pod %s: preStop over; SIGTERM", entry.key)
                entry.term_at = None
                entry.process.terminate()
        for uid, pod in list(self.waiting.items()):
            if uid not in self.processes:
                del self.waiting[uid]
                self._start(uid, pod)

    def stop_all(self, max_grace_seconds: float) -> None:
        for uid in list(self.processes):
            self._terminate(uid, max_grace_seconds, pre_stop=False)
        deadline = time.monotonic() + max_grace_seconds
        while self.processes and time.monotonic() < deadline + 1:
            self.tick()
            time.sleep(0.05)
        for entry in self.processes.values():
            entry.process.kill()
            # reap it: an unreaped child stays a zombie and Popen warns about it
            with contextlib.suppress(subprocess.TimeoutExpired):
                entry.process.wait(timeout=5)
        self.processes.clear()

    def _announce_listening(self) -> None:
        """Write `llmscale.dev/ready-at` on pods whose process now accepts connections; KWOK's
        pod-ready-runner stage marks them Ready at that time (never before they listen)."""
        for entry in self.processes.values():
            if entry.announced or entry.kill_at is not None or entry.process.poll() is not None:
                continue
            port = pp.serving_port(entry.pod)
            try:
                with socket.create_connection((entry.ip, port), timeout=0.05):
                    pass
            except OSError:
                continue
            moment = pp.ready_at(entry.pod, datetime.datetime.now(datetime.UTC))
            metadata = entry.pod["metadata"]
            patch = {"metadata": {"annotations": {pp.READY_AT_ANNOTATION: pp.rfc3339(moment)}}}
            try:
                self.core.patch_namespaced_pod(metadata["name"], metadata["namespace"], patch)
            except Exception as exc:  # pod gone (404) or apiserver busy: 404 ends it, else retry
                if getattr(exc, "status", None) != 404:
                    log.warning("cannot mark pod %s listening: %s", entry.key, exc)
                    continue
            entry.announced = True
            log.info("pod %s listens on %s:%d; ready at %s", entry.key, entry.ip, port, pp.rfc3339(moment))

    def _ip_busy(self, ip: str) -> bool:
        return any(e.ip == ip and e.process.poll() is None for e in self.processes.values())

    def _labels_of_node(self, node_name: str | None) -> dict[str, str]:
        if not node_name:
            return {}
        if node_name not in self.node_labels:
            try:
                node = self.core.read_node(node_name)
                self.node_labels[node_name] = dict(node.metadata.labels or {})
            except Exception as exc:  # a missing node must not stop the runner
                log.warning("cannot read node %s: %s", node_name, exc)
                return {}
        return self.node_labels[node_name]

    def _start(self, uid: str, pod: dict[str, Any]) -> None:
        key = pp.pod_key(pod)
        argv = pp.command_for(pod, self.rules)
        if argv is None:
            rule = pod["metadata"].get("labels", {}).get(pp.RUNNER_LABEL)
            log.warning(
                "pod %s asks for unknown runner rule %r (known: %s)", key, rule, ", ".join(self.rules)
            )
            self.exited.add(uid)  # say it once, not on every event of the pod
            return
        ip = pp.pod_ip(pod) or ""
        if self._ip_busy(ip):
            # KWOK recycles IPs at once; the previous pod's process may still be draining
            self.waiting[uid] = pod
            return
        env = dict(os.environ) | pp.pod_env(pod, self._labels_of_node(pod["spec"].get("nodeName")))
        log_path = self.pods_dir / f"{key.replace('/', '_')}.log"
        with log_path.open("ab") as pod_log:
            pod_log.write(f"[pod-runner] starting {argv} on {ip}\n".encode())
            pod_log.flush()
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=pod_log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.pods_dir,
            )
        self.processes[uid] = PodProcess(key, ip, process, log_path, pod)
        log.info("started %s for pod %s on %s (pid %d)", argv[-1], key, ip, process.pid)

    def _terminate(self, uid: str, grace: float, *, pre_stop: bool = True) -> None:
        """As a kubelet: the preStop sleep first (the process keeps serving), then SIGTERM,
        then SIGKILL when the grace period (counted from the start) is over."""
        entry = self.processes.get(uid)
        if entry is None or entry.kill_at is not None:
            return
        now = time.monotonic()
        entry.kill_at = now + grace
        sleep = min(pp.pre_stop_sleep_seconds(entry.pod), grace) if pre_stop else 0.0
        if sleep > 0 and entry.process.poll() is None:
            log.info("pod %s is going away: preStop sleep %.0f s, then SIGTERM", entry.key, sleep)
            entry.term_at = now + sleep
            return
        log.info("pod %s is going away: SIGTERM (SIGKILL in %.0f s)", entry.key, grace)
        if entry.process.poll() is None:
            entry.process.terminate()


def _watch_pods(core: Any, api: Any, events: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
    """List then watch labelled pods forever, relisting after errors and expired versions."""
    from kubernetes import watch

    while not stop.is_set():
        try:
            listing = core.list_pod_for_all_namespaces(label_selector=pp.RUNNER_LABEL)
            pods = [api.sanitize_for_serialization(p) for p in listing.items]
            events.put(("LIST", pods))
            version = listing.metadata.resource_version
            while not stop.is_set():
                watch_class: Any = watch.Watch  # untyped in the kubernetes package
                watcher = watch_class()
                stream = watcher.stream(
                    core.list_pod_for_all_namespaces,
                    label_selector=pp.RUNNER_LABEL,
                    resource_version=version,
                    timeout_seconds=WATCH_TIMEOUT_SECONDS,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    pod = api.sanitize_for_serialization(event["object"])
                    version = pod["metadata"].get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        events.put((event["type"], pod))
                    if stop.is_set():
                        break
        except Exception as exc:  # 410 Gone, apiserver restart: relist after a pause
            if not stop.is_set():
                log.warning("pod watch interrupted (%s); relisting", exc)
                stop.wait(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmscale-pod-runner")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--pods-dir", required=True, type=Path)
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)

    from kubernetes import client, config

    new_client: Any = config.new_client_from_config  # untyped in the kubernetes package
    api = new_client(config_file=str(args.kubeconfig))
    core = client.CoreV1Api(api)
    args.pods_dir.mkdir(parents=True, exist_ok=True)
    try:
        rules = pp.rule_commands(engine=os.environ.get("LLMSCALE_POD_ENGINE", "emulator"))
    except ValueError as exc:
        print(f"llmscale-pod-runner: {exc}", file=sys.stderr)
        return 2
    runner = PodRunner(core, args.pods_dir, rules)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=_watch_pods, args=(core, api, events, stop), daemon=True).start()
    ready_written = False
    while not stop.is_set():
        try:
            kind, payload = events.get(timeout=TICK_SECONDS)
        except queue.Empty:
            pass
        else:
            if kind == "LIST":
                runner.forget_missing({pp.pod_uid(p) for p in payload})
                for pod in payload:
                    runner.handle(pod, deleted=False)
                if not ready_written and args.ready_file is not None:
                    args.ready_file.write_text(f"{os.getpid()}\n")
                    ready_written = True
            else:
                runner.handle(payload, deleted=kind == "DELETED")
        runner.tick()
    log.info("stopping: SIGTERM to %d pod processes", len(runner.processes))
    runner.stop_all(max_grace_seconds=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
