"""A real Kubernetes control plane as local processes, for tests and local development.

``LocalCluster`` starts, on 127.0.0.1 only and on free ports:

    etcd -> kube-apiserver -> kube-controller-manager, kube-scheduler -> kwok -> fake Nodes

from binaries built by ``hack/cluster/build.sh`` into
``${PRESIZE_CACHE:-/var/cache/presize}/bin/<component>-<version>/``, with the versions pinned in
``hack/cluster/versions.env``. It generates its own PKI with the ``openssl`` CLI (a cluster CA,
the apiserver's serving cert, client certs for admin / controller-manager / scheduler, a
front-proxy CA and a service-account signing key), writes an admin kubeconfig, and stops every
process it started by its pid (never by name), also when start-up fails.

kwok plays the kubelets: it marks the fake Nodes Ready, keeps their Leases fresh and moves
scheduled Pods to Running. With ``simulate_resize=True`` (the default) a Stage of our own also
plays the kubelet's part of an in-place resize (GA in 1.35): running containers report
``status.containerStatuses[].resources`` (without it the apiserver rejects every resize with
"Pod running on node without support for resize"), and after a resize the new
``spec.resources`` are reported as actual and ``metadata.generation`` as
``status.observedGeneration``. With ``simulate_resize=False`` kwok's upstream stages are used
as they are (resizes of running pods are then refused), e.g. when a node shim does that job.

Nothing here dials anything but 127.0.0.1: Pod IPs and ClusterIPs are bookkeeping only, the
fake nodes report 127.0.0.1 as their address, and the apiserver does not publish an endpoint for
the ``kubernetes`` Service (``--endpoint-reconciler-type=none``, see ``docs/local-cluster.md``).

Stdlib only, independent of the ``presize`` package. CLI::

    python -m hack.cluster.localcluster up --dir DIR [--nodes N]   # runs until Ctrl-C or `down`
    python -m hack.cluster.localcluster down --dir DIR             # stops by the recorded pids
    python -m hack.cluster.localcluster status --dir DIR
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final, Self

HERE: Final = Path(__file__).resolve().parent
VERSIONS_FILE: Final = HERE / "versions.env"
DEFAULT_CACHE: Final = Path("/var/cache/presize")
LOOPBACK: Final = "127.0.0.1"
STATE_FILE: Final = "cluster.json"
KWOK_NODE_LABEL: Final = ("type", "kwok")
SERVICE_CIDR: Final = "10.96.0.0/16"
POD_CIDR: Final = "10.244.0.0/16"  # kwok's fake pod IPs; nothing ever connects to them

__all__ = [
    "Binaries",
    "BinariesMissingError",
    "CertPair",
    "ClusterError",
    "LocalCluster",
    "NodeSpec",
    "Pki",
    "down",
    "free_ports",
    "main",
    "read_versions",
    "write_kubeconfig",
]

# Start order; stop() goes the other way.
COMPONENTS: Final = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
)


class ClusterError(RuntimeError):
    """The local cluster could not be started, reached or stopped."""


class BinariesMissingError(ClusterError):
    """Some binaries are not in the cache: run ``hack/cluster/build.sh``."""

    def __init__(self, missing: Sequence[Path]) -> None:
        self.missing = tuple(missing)
        listed = ", ".join(str(p) for p in self.missing)
        super().__init__(f"local-cluster binaries not built (run hack/cluster/build.sh): {listed}")


# --------------------------------------------------------------------------------------------
# versions and binaries


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines (the file build.sh sources); ``#`` starts a comment line."""
    versions: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ClusterError(f"{path}: not KEY=VALUE: {raw!r}")
        versions[key.strip()] = value.strip().strip("'\"")
    return versions


def cache_root() -> Path:
    """``$PRESIZE_CACHE`` or ``/var/cache/presize``."""
    return Path(os.environ.get("PRESIZE_CACHE") or DEFAULT_CACHE)


@dataclass(frozen=True)
class Binaries:
    """Paths of the cached binaries for the pinned versions."""

    kubernetes_version: str
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    kwok_stages: Path
    helm: Path
    kubelet: Path
    kube_proxy: Path
    coredns: Path

    @classmethod
    def from_cache(
        cls, cache: Path | None = None, versions: Mapping[str, str] | None = None
    ) -> Binaries:
        v = dict(versions) if versions is not None else read_versions()
        b = (cache or cache_root()) / "bin"
        k8s = b / f"kubernetes-{v['KUBERNETES_VERSION']}"
        kwok = b / f"kwok-{v['KWOK_VERSION']}"
        return cls(
            kubernetes_version=v["KUBERNETES_VERSION"],
            etcd=b / f"etcd-{v['ETCD_VERSION']}" / "etcd",
            kube_apiserver=k8s / "kube-apiserver",
            kube_controller_manager=k8s / "kube-controller-manager",
            kube_scheduler=k8s / "kube-scheduler",
            kubectl=k8s / "kubectl",
            kwok=kwok / "kwok",
            kwok_stages=kwok / "stages",
            helm=b / f"helm-{v['HELM_VERSION']}" / "helm",
            kubelet=k8s / "kubelet",
            kube_proxy=k8s / "kube-proxy",
            coredns=b / f"coredns-{v['COREDNS_VERSION']}" / "coredns",
        )

    def required(self) -> tuple[Path, ...]:
        """What ``LocalCluster`` needs (kubectl and helm are optional extras)."""
        return (
            self.etcd,
            self.kube_apiserver,
            self.kube_controller_manager,
            self.kube_scheduler,
            self.kwok,
            self.kwok_stages / "node-initialize.yaml",
        )

    def missing(self) -> list[Path]:
        return [p for p in self.required() if not p.exists()]


# --------------------------------------------------------------------------------------------
# small helpers


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all sockets are held until every port is picked)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # zombie: exited, not reaped yet
        return None
    return int(fields[19])


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """True if ``pid`` runs and, when ``start_time`` is given, is still the same process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = _proc_start_time(pid)
    if started is None:
        return not Path("/proc").is_dir() and start_time is None
    return start_time is None or started == start_time


def stop_pid(pid: int, start_time: int | None, timeout: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``, the process ``pid`` (only if it is still the one
    that was started at ``start_time``). Returns True if it was running."""
    if not pid_alive(pid, start_time):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, start_time):
            return True
        time.sleep(0.1)
    if pid_alive(pid, start_time):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and pid_alive(pid, start_time):
            time.sleep(0.1)
    return True


# klog error/fatal lines, cobra's "Error: ...", JSON logs (etcd, kwok) at error level or worse
_ERROR_LINE: Final = re.compile(r'^[EF]\d{4} |^[Ee]rror: |"level":"(?i:error|fatal|panic)"')


def _tail(path: Path, lines: int = 30) -> str:
    """The first few error-looking lines of a log, then its last ``lines`` lines."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    all_lines = text.splitlines()
    errors = [line for line in all_lines if _ERROR_LINE.search(line)][:5]
    head = ["(first error lines)", *errors, "(last lines)"] if errors else []
    return "\n".join([*head, *all_lines[-lines:]])


def _quote_yaml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


# --------------------------------------------------------------------------------------------
# PKI with the openssl CLI


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


class Pki:
    """Throw-away CAs and the certificates the cluster needs (EC P-256, 10 years).

    ``ca`` signs the apiserver's serving cert and every client cert (``--client-ca-file``);
    ``front_proxy_ca`` only signs the aggregation proxy's client cert
    (``--requestheader-client-ca-file``), kept apart as upstream recommends.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = CertPair(directory / "ca.crt", directory / "ca.key")
        self.front_proxy_ca = CertPair(
            directory / "front-proxy-ca.crt", directory / "front-proxy-ca.key"
        )
        self.sa_key = directory / "sa.key"
        self.sa_pub = directory / "sa.pub"
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ClusterError("the openssl CLI is needed to generate the cluster's certificates")
        self._openssl = openssl

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            [self._openssl, *args], cwd=self.dir, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ClusterError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")

    def _create_ca(self, pair: CertPair, common_name: str) -> None:
        self._run(
            "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-keyout", str(pair.key), "-out", str(pair.cert),
            "-days", "3650", "-subj", f"/CN={common_name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )  # fmt: skip

    def create(self) -> None:
        """Create both CAs and the service-account signing key pair (RSA 2048)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._create_ca(self.ca, "presize-local-ca")
        self._create_ca(self.front_proxy_ca, "presize-local-front-proxy-ca")
        self._run(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", str(self.sa_key),
        )  # fmt: skip
        self._run("pkey", "-in", str(self.sa_key), "-pubout", "-out", str(self.sa_pub))

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        sans: Sequence[str] = (),
        server: bool = False,
        client: bool = False,
        ca: CertPair | None = None,
    ) -> CertPair:
        """Issue ``<name>.crt``/``<name>.key`` signed by ``ca`` (default: the cluster CA).

        ``organizations`` become Kubernetes groups for client certs; ``sans`` are ``IP:...``
        or ``DNS:...`` entries."""
        signer = ca or self.ca
        pair = CertPair(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        csr = self.dir / f"{name}.csr"
        ext = self.dir / f"{name}.ext"
        subject = "".join(f"/O={o}" for o in organizations) + f"/CN={common_name}"
        usages = [u for u, on in (("serverAuth", server), ("clientAuth", client)) if on]
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={','.join(usages)}",
        ]
        if sans:
            lines.append(f"subjectAltName={','.join(sans)}")
        ext.write_text("\n".join(lines) + "\n", encoding="ascii")
        self._run(
            "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(pair.key), "-out", str(csr), "-subj", subject,
        )  # fmt: skip
        self._run(
            "x509", "-req", "-in", str(csr), "-CA", str(signer.cert), "-CAkey", str(signer.key),
            "-set_serial", f"0x{secrets.token_hex(16)}", "-days", "3650", "-sha256",
            "-extfile", str(ext), "-out", str(pair.cert),
        )  # fmt: skip
        csr.unlink()
        ext.unlink()
        return pair


def write_kubeconfig(
    path: Path, server: str, ca: Path, client: CertPair, user: str = "admin"
) -> Path:
    """A kubeconfig (JSON, which is valid YAML) with absolute file references."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "presize-local",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(client.cert),
                    "client-key": str(client.key),
                },
            }
        ],
        "contexts": [
            {"name": "presize-local", "context": {"cluster": "presize-local", "user": user}}
        ],
        "current-context": "presize-local",
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------------------------
# kwok stages

# Plays the kubelet's part of an in-place resize (KEP-1287, GA in 1.35): when a running pod's
# container resources in spec differ from those reported in status (or the pod's generation was
# bumped), report the spec values as actual, and the generation as observed. containerStatuses
# has no strategic-merge key, so the whole list is rewritten from the existing entries.
RESIZE_STAGE: Final = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: presize-pod-resize
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.status.containerStatuses'
      operator: 'Exists'
    - key: >-
        ((.metadata.generation // 0) == (.status.observedGeneration // 0)) and
        (([.spec.containers[] | {(.name): (.resources // {})}] | add) ==
         ([.status.containerStatuses[] | {(.name): (.resources // {})}] | add))
      operator: 'In'
      values: ['false']
  next:
    statusTemplate: |
      {{ $specs := .spec.containers }}
      {{ with .metadata.generation }}
      observedGeneration: {{ . }}
      {{ end }}
      containerStatuses:
      {{ range .status.containerStatuses }}
      {{ $name := .name }}
      {{ $res := dict }}
      {{ range $specs }}{{ if eq .name $name }}{{ $res = (or .resources dict) }}{{ end }}{{ end }}
      {{ $cs := deepCopy . }}
      {{ $_ := set $cs "resources" $res }}
      - {{ toJson $cs }}
      {{ end }}
"""

# Upstream stages used as they are (copied out of the kwok module by build.sh).
DEFAULT_STAGES: Final = (
    "node-initialize.yaml",
    "node-heartbeat-with-lease.yaml",
    "pod-complete.yaml",
    "pod-delete.yaml",
)
UPSTREAM_POD_READY: Final = "pod-ready.yaml"


# --------------------------------------------------------------------------------------------
# the cluster


@dataclass
class _Proc:
    name: str
    pid: int
    start_time: int | None
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_time": self.start_time, "log": str(self.log)}


@dataclass(frozen=True)
class NodeSpec:
    """Capacity and labels of each fake node (allocatable = capacity)."""

    cpu: str = "32"
    memory: str = "256Gi"
    pods: str = "110"
    labels: Mapping[str, str] = field(default_factory=dict)


class LocalCluster:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok, on loopback.

    Use as a context manager, or call ``start()`` / ``stop()``. After ``start()``:
    ``kubeconfig`` (admin, group system:masters), ``api_url``, ``ca_cert``, ``node_names``,
    ``pids``, and ``request()`` for small stdlib API calls.
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        nodes: int = 1,
        node: NodeSpec | None = None,
        node_prefix: str = "kwok-node-",
        binaries: Binaries | None = None,
        simulate_resize: bool = True,
        startup_timeout: float = 180.0,
        feature_gates: Mapping[str, bool] | None = None,
        extra_args: Mapping[str, Sequence[str]] | None = None,
        node_address: str | None = None,
    ) -> None:
        """``node_address``: a real kubelet joins at this address (a /32 on a local veth, see
        ``hack.cluster.realnode``). The apiserver then listens and advertises there instead of
        on loopback (pods reach it through the ``kubernetes`` Service), publishes its endpoint,
        dials kubelets by InternalIP with a client certificate of its own, and calls webhooks
        at their endpoints (pod IPs on the node's bridge) rather than at ClusterIPs, which only
        kube-proxy's rules give a meaning and a blackhole route guards on the host."""
        self.workdir = Path(workdir).resolve()
        self.node_address = node_address
        self.address = node_address or LOOPBACK
        self.node_count = nodes
        self.node = node or NodeSpec()
        self.node_names = [f"{node_prefix}{i}" for i in range(nodes)]
        self.binaries = binaries or Binaries.from_cache()
        self.simulate_resize = simulate_resize
        self.startup_timeout = startup_timeout
        self.feature_gates = dict(feature_gates or {})
        self.extra_args = {k: list(v) for k, v in (extra_args or {}).items()}
        self.pki_dir = self.workdir / "pki"
        self.log_dir = self.workdir / "logs"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.ports: dict[str, int] = {}
        self._procs: dict[str, _Proc] = {}
        self._pki: Pki | None = None
        self._ssl: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._started = False

    # ---- public properties

    @property
    def api_url(self) -> str:
        return f"https://{self.address}:{self.ports['kube-apiserver']}"

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.pki_dir / "ca.key"

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self._procs.items()}

    @property
    def state_file(self) -> Path:
        return self.workdir / STATE_FILE

    # ---- context manager

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- lifecycle

    def start(self) -> None:
        """Start everything and wait until the nodes are Ready; on any failure stop what was
        started and raise ``ClusterError`` with the tail of the relevant log."""
        if self._started:
            raise ClusterError("already started")
        missing = self.binaries.missing()
        if missing:
            raise BinariesMissingError(missing)
        self._started = True
        deadline = time.monotonic() + self.startup_timeout
        try:
            self._prepare()
            self._start_etcd(deadline)
            self._start_apiserver(deadline)
            self._start_controller_manager(deadline)
            self._start_scheduler(deadline)
            self._start_kwok()
            self._create_nodes()
            self._wait_nodes_ready(deadline)
            self._wait_default_service_account(deadline)
            self._check_alive()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every process this object started, in reverse order, by pid. Idempotent."""
        with self._lock:
            for name in reversed(COMPONENTS):
                proc = self._procs.get(name)
                if proc is None:
                    continue
                if proc.popen is not None:
                    stop_popen(proc.popen, timeout)
                else:
                    stop_pid(proc.pid, proc.start_time, timeout)
            if self._procs:
                self._write_state(running=False)

    def exited(self) -> dict[str, int]:
        """Components that have exited since start, with their exit codes."""
        out: dict[str, int] = {}
        for name, proc in self._procs.items():
            if proc.popen is not None and (rc := proc.popen.poll()) is not None:
                out[name] = rc
        return out

    # ---- API access (stdlib)

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the apiserver against the cluster CA and presents the admin client cert."""
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=str(self.ca_cert))
            ctx.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
            self._ssl = ctx
        return self._ssl

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """One admin API call: (status, parsed JSON or text). HTTP errors are returned."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.ssl_context())
        )
        try:
            with opener.open(req, timeout=timeout) as resp:
                status, raw = int(resp.status), resp.read()
        except urllib.error.HTTPError as err:
            status, raw = int(err.code), err.read()
        text = raw.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def issue_client_kubeconfig(self, name: str, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig (``user-<name>.kubeconfig``) for an extra client-certificate identity:
        user name ``user``, groups ``groups``. For RBAC tests."""
        pki = self._require_pki()
        pair = pki.issue(f"user-{name}", user, organizations=groups, client=True)
        return write_kubeconfig(
            self.workdir / f"user-{name}.kubeconfig", self.api_url, self.ca_cert, pair, user=user
        )

    # ---- internals: preparation

    def _require_pki(self) -> Pki:
        if self._pki is None:
            raise ClusterError("cluster not started")
        return self._pki

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        state = self.state_file
        if state.exists():
            old = json.loads(state.read_text(encoding="utf-8"))
            for name, p in old.get("processes", {}).items():
                if pid_alive(int(p["pid"]), p.get("start_time")):
                    raise ClusterError(
                        f"{self.workdir} is in use: {name} (pid {p['pid']}) still runs; "
                        "run `python -m hack.cluster.localcluster down --dir ...` first"
                    )
        for stale in ("etcd", "pki"):
            shutil.rmtree(self.workdir / stale, ignore_errors=True)
        names = ["etcd", "etcd-peer", *COMPONENTS[1:4]]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))

        pki = Pki(self.pki_dir)
        pki.create()
        sans = [
            f"IP:{self.address}",
            f"IP:{LOOPBACK}",
            "DNS:localhost",
            "IP:10.96.0.1",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
        pki.issue("apiserver", "kube-apiserver", sans=sans, server=True)
        admin = pki.issue("admin", "presize-admin", organizations=["system:masters"], client=True)
        kcm = pki.issue("kube-controller-manager", "system:kube-controller-manager", client=True)
        sched = pki.issue("kube-scheduler", "system:kube-scheduler", client=True)
        pki.issue("front-proxy-client", "front-proxy-client", client=True, ca=pki.front_proxy_ca)
        if self.node_address:
            # The apiserver's identity towards kubelets (their webhook authorizer checks it).
            pki.issue(
                "apiserver-kubelet-client",
                "kube-apiserver-kubelet-client",
                organizations=["system:masters"],
                client=True,
            )
        self._pki = pki
        url = self.api_url
        write_kubeconfig(self.kubeconfig, url, pki.ca.cert, admin)
        write_kubeconfig(self.workdir / "kube-controller-manager.kubeconfig", url, pki.ca.cert, kcm)
        write_kubeconfig(self.workdir / "kube-scheduler.kubeconfig", url, pki.ca.cert, sched)

    def _spawn(self, name: str, binary: Path, args: Sequence[str]) -> _Proc:
        log = self.log_dir / f"{name}.log"
        argv = [str(binary), *args, *self.extra_args.get(name, [])]
        env = dict(os.environ)
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "KUBECONFIG"):
            env.pop(var, None)
        env["NO_PROXY"] = env["no_proxy"] = f"{LOOPBACK},localhost,{self.address}"
        with log.open("ab") as out:
            out.write(f"==> {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the children
            )
        proc = _Proc(name, popen.pid, _proc_start_time(popen.pid), log, popen)
        self._procs[name] = proc
        self._write_state(running=True)
        return proc

    def _write_state(self, *, running: bool) -> None:
        state = {
            "running": running,
            "supervisor_pid": os.getpid(),
            "supervisor_start_time": _proc_start_time(os.getpid()),
            "workdir": str(self.workdir),
            "kubeconfig": str(self.kubeconfig),
            "api_url": self.api_url if "kube-apiserver" in self.ports else None,
            "ports": self.ports,
            "nodes": self.node_names,
            "kubernetes_version": self.binaries.kubernetes_version,
            "processes": {n: p.to_json() for n, p in self._procs.items()},
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.state_file)

    # ---- internals: waiting

    def _fail(self, name: str, why: str) -> ClusterError:
        proc = self._procs.get(name)
        log = proc.log if proc else self.log_dir / f"{name}.log"
        return ClusterError(f"{name}: {why}\n--- {log}:\n{_tail(log)}")

    def _check_alive(self, *names: str) -> None:
        for name in names or tuple(self._procs):
            proc = self._procs[name]
            if proc.popen is not None and (rc := proc.popen.poll()) is not None:
                raise self._fail(name, f"exited with code {rc}")

    def _wait(
        self,
        name: str,
        deadline: float,
        what: str,
        probe: Callable[[], bool],
        interval: float = 0.25,
    ) -> None:
        """Poll ``probe() -> bool`` until True, failing early if process ``name`` dies."""
        last_error = ""
        while True:
            self._check_alive(name)
            try:
                if probe():
                    return
            except (OSError, ValueError, ssl.SSLError, urllib.error.URLError) as err:
                last_error = f" (last error: {err})"
            if time.monotonic() > deadline:
                raise self._fail(name, f"timed out waiting for {what}{last_error}")
            time.sleep(interval)

    @staticmethod
    def _http_ok(url: str, context: ssl.SSLContext | None = None, expect: str = "") -> bool:
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        try:
            with opener.open(url, timeout=3) as resp:
                body = resp.read().decode("utf-8", errors="replace")
                return int(resp.status) == 200 and expect in body
        except urllib.error.HTTPError:
            return False

    # ---- internals: components

    def _start_etcd(self, deadline: float) -> None:
        client = f"http://{LOOPBACK}:{self.ports['etcd']}"
        peer = f"http://{LOOPBACK}:{self.ports['etcd-peer']}"
        self._spawn(
            "etcd",
            self.binaries.etcd,
            [
                "--name=presize",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=presize={peer}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",  # test data only: skip fsync, much faster
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
        )
        self._wait(
            "etcd", deadline, "/health", lambda: self._http_ok(f"{client}/health", None, "true")
        )

    def _start_apiserver(self, deadline: float) -> None:
        p = self.pki_dir
        args = [
            f"--etcd-servers=http://{LOOPBACK}:{self.ports['etcd']}",
            f"--bind-address={self.address}",
            f"--secure-port={self.ports['kube-apiserver']}",
            # The advertise address is only published in the `kubernetes` Service's endpoints;
            # with the reconciler off nothing is published, and a loopback address is accepted.
            f"--advertise-address={self.address}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            # Aggregation-layer identity. Also fills the extension-apiserver-authentication
            # ConfigMap that the controller-manager and scheduler read for delegated authn.
            f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--profiling=false",
        ]
        if self.node_address:
            args += [
                f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP",  # never a DNS lookup of a node
                "--enable-aggregator-routing=true",  # webhooks at pod IPs, not ClusterIPs
            ]
        else:
            args.append("--endpoint-reconciler-type=none")
        args += self._feature_gate_args()
        self._spawn("kube-apiserver", self.binaries.kube_apiserver, args)
        ctx = self.ssl_context()
        self._wait(
            "kube-apiserver",
            deadline,
            "/readyz",
            lambda: self._http_ok(f"{self.api_url}/readyz", ctx),
        )

    def _feature_gate_args(self) -> list[str]:
        """The same --feature-gates for apiserver, controller-manager and scheduler."""
        if not self.feature_gates:
            return []
        gates = (f"{k}={str(v).lower()}" for k, v in sorted(self.feature_gates.items()))
        return [f"--feature-gates={','.join(gates)}"]

    def _component_args(self, name: str) -> list[str]:
        kubeconfig = self.workdir / f"{name}.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={self.ports[name]}",
            f"--cert-dir={self.workdir / (name + '-certs')}",
            "--leader-elect=false",
        ]

    def _wait_healthz(self, name: str, deadline: float) -> None:
        # Self-signed serving cert in --cert-dir; this is a health probe of our own child on
        # loopback, so skip verification.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        url = f"https://{LOOPBACK}:{self.ports[name]}/healthz"
        self._wait(name, deadline, "/healthz", lambda: self._http_ok(url, ctx, "ok"))

    def _start_controller_manager(self, deadline: float) -> None:
        p = self.pki_dir
        args = [
            *self._component_args("kube-controller-manager"),
            "--use-service-account-credentials=true",
            # default is /usr/libexec/kubernetes/...: it would create directories on the host
            f"--flex-volume-plugin-dir={self.workdir / 'flexvolume'}",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}",
            f"--cluster-signing-key-file={p / 'ca.key'}",
            "--profiling=false",
        ]
        args += self._feature_gate_args()
        self._spawn("kube-controller-manager", self.binaries.kube_controller_manager, args)
        self._wait_healthz("kube-controller-manager", deadline)

    def _start_scheduler(self, deadline: float) -> None:
        args = [*self._component_args("kube-scheduler"), "--profiling=false"]
        args += self._feature_gate_args()
        self._spawn("kube-scheduler", self.binaries.kube_scheduler, args)
        self._wait_healthz("kube-scheduler", deadline)

    def _write_kwok_config(self) -> Path:
        docs = []
        for stage in DEFAULT_STAGES:
            path = self.binaries.kwok_stages / stage
            if not path.exists():
                raise ClusterError(f"kwok stage {path} missing: run hack/cluster/build.sh kwok")
            docs.append(path.read_text(encoding="utf-8").strip())
        docs.append((self.binaries.kwok_stages / UPSTREAM_POD_READY).read_text().strip())
        if self.simulate_resize:
            # Our own stage runs after kwok's pod-ready: it reports the containers' resources
            # (and the observed generation) whenever they differ from spec, which covers both
            # the first report of a running pod and every resize after it.
            docs.append(RESIZE_STAGE.strip())
        config = self.workdir / "kwok.yaml"
        config.write_text("\n---\n".join(docs) + "\n", encoding="utf-8")
        return config

    def _start_kwok(self) -> None:
        key, value = KWOK_NODE_LABEL
        self._spawn(
            "kwok",
            self.binaries.kwok,
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self._write_kwok_config()}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-label-selector={key}={value}",
                # the fake nodes' InternalIP: anything that dials a node stays on loopback
                f"--node-ip={LOOPBACK}",
                f"--cidr={POD_CIDR}",
                "--node-lease-duration-seconds=40",
            ],
        )

    def node_manifest(self, name: str) -> dict[str, Any]:
        key, value = KWOK_NODE_LABEL
        resources = {"cpu": self.node.cpu, "memory": self.node.memory, "pods": self.node.pods}
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            key: value,
            **self.node.labels,
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "kwok.x-k8s.io/node": "fake",
                },
            },
            "status": {"capacity": resources, "allocatable": dict(resources)},
        }

    def add_node(self, name: str) -> None:
        """Create one more kwok-managed fake node (returns without waiting for Ready)."""
        status, body = self.request("POST", "/api/v1/nodes", self.node_manifest(name))
        if status not in (200, 201, 409):
            raise ClusterError(f"creating node {name}: HTTP {status}: {body}")
        if name not in self.node_names:
            self.node_names.append(name)

    def _create_nodes(self) -> None:
        for name in list(self.node_names):
            self.add_node(name)

    def node_ready(self, name: str) -> bool:
        status, body = self.request("GET", f"/api/v1/nodes/{name}")
        if status != 200:
            return False
        conditions = body.get("status", {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def _wait_nodes_ready(self, deadline: float) -> None:
        for name in self.node_names:
            self._wait(
                "kwok", deadline, f"node {name} Ready", functools.partial(self.node_ready, name)
            )

    def _wait_default_service_account(self, deadline: float) -> None:
        def present() -> bool:
            status, _ = self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            return status == 200

        self._wait("kube-controller-manager", deadline, "serviceaccount default/default", present)


# --------------------------------------------------------------------------------------------
# CLI


def _load_state(workdir: Path) -> dict[str, Any]:
    path = workdir / STATE_FILE
    if not path.exists():
        raise ClusterError(f"no {STATE_FILE} in {workdir}: nothing was started there")
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return state


def down(workdir: Path, timeout: float = 30.0) -> list[str]:
    """Stop a cluster started by ``up`` in ``workdir``, using only the pids recorded there.
    Returns the names of the processes that were still running."""
    state = _load_state(workdir)
    stopped: list[str] = []
    sup_pid = int(state.get("supervisor_pid") or 0)
    sup_start = state.get("supervisor_start_time")
    # Ask the `up` process to stop its children in order first; it exits when done.
    if sup_pid != os.getpid() and stop_pid(sup_pid, sup_start, timeout):
        stopped.append(f"supervisor (pid {sup_pid})")
    procs: dict[str, Any] = state.get("processes", {})
    for name in reversed(COMPONENTS):
        p = procs.get(name)
        if p and stop_pid(int(p["pid"]), p.get("start_time")):
            stopped.append(name)
    state["running"] = False
    (workdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return stopped


def _cmd_up(args: argparse.Namespace) -> int:
    stop_requested = threading.Event()
    starting = True

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()
        if starting:  # interrupt start(); it stops what it has started and re-raises
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster = LocalCluster(
        args.dir,
        nodes=args.nodes,
        node=NodeSpec(cpu=args.node_cpu, memory=args.node_memory, pods=args.node_pods),
        simulate_resize=not args.no_resize_stage,
        startup_timeout=args.timeout,
    )
    t0 = time.monotonic()
    try:
        cluster.start()
        starting = False
        print(f"cluster up in {time.monotonic() - t0:.1f}s ({cluster.binaries.kubernetes_version})")
        print(f"kubeconfig: {cluster.kubeconfig}")
        print(f"api: {cluster.api_url}")
        print(f"nodes: {', '.join(cluster.node_names)}")
        for name, pid in cluster.pids.items():
            print(f"pid {pid:>7}  {name}  (log {cluster.log_dir / (name + '.log')})")
        print(
            f"supervisor pid {os.getpid()}; stop with Ctrl-C or: "
            f"python -m hack.cluster.localcluster down --dir {cluster.workdir}",
            flush=True,
        )
        while not stop_requested.wait(1.0):
            if dead := cluster.exited():
                print(f"component(s) exited: {dead}; stopping", file=sys.stderr)
                return 1
        return 0
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if cluster.pids:
            cluster.stop()
            print("cluster stopped", flush=True)


def _cmd_down(args: argparse.Namespace) -> int:
    stopped = down(Path(args.dir).resolve())
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    state = _load_state(Path(args.dir).resolve())
    print(f"kubeconfig: {state['kubeconfig']}\napi: {state['api_url']}")
    for name, p in state.get("processes", {}).items():
        alive = pid_alive(int(p["pid"]), p.get("start_time"))
        print(f"pid {p['pid']:>7}  {name:<24} {'running' if alive else 'stopped'}")
    return 0


def _cmd_paths(args: argparse.Namespace) -> int:
    b = Binaries.from_cache()
    for name in (
        "etcd",
        "kube_apiserver",
        "kube_controller_manager",
        "kube_scheduler",
        "kubectl",
        "kwok",
        "helm",
    ):
        path: Path = getattr(b, name)
        print(f"{name:<24} {path} {'' if path.exists() else '(missing)'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.cluster.localcluster")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cluster and keep it running until Ctrl-C or `down`")
    up.add_argument("--dir", required=True, help="work dir: pki, kubeconfig, etcd data, logs")
    up.add_argument("--nodes", type=int, default=1)
    up.add_argument("--node-cpu", default="32")
    up.add_argument("--node-memory", default="256Gi")
    up.add_argument("--node-pods", default="110")
    up.add_argument(
        "--no-resize-stage",
        action="store_true",
        help="do not simulate the kubelet's side of in-place resize",
    )
    up.add_argument("--timeout", type=float, default=180.0, help="start-up timeout, seconds")
    up.set_defaults(func=_cmd_up)
    dn = sub.add_parser("down", help="stop the cluster recorded in --dir (by pid)")
    dn.add_argument("--dir", required=True)
    dn.set_defaults(func=_cmd_down)
    st = sub.add_parser("status", help="show the recorded pids and whether they run")
    st.add_argument("--dir", required=True)
    st.set_defaults(func=_cmd_status)
    pa = sub.add_parser("paths", help="show where the cached binaries are expected")
    pa.set_defaults(func=_cmd_paths)
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())


def stop_popen(popen: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM a process this code started (by its pid), SIGKILL it after ``timeout``."""
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(10)
