"""One real Kubernetes node on this machine: kubelet + containerd + runc + CNI bridge, plus
kube-proxy and CoreDNS, joined to a ``LocalCluster``.

Facts it rests on are in ``../shared/docs/real-node.md``. What it does, in order:

1. **Network first** (``NodeNetwork``): blackhole routes for the pod and Service ranges, so a
   packet to an address nothing here serves is dropped on this machine and never leaves it; a
   veth pair whose host end carries the node's address (a /32 that exists only here; the
   kubelet refuses a loopback node IP). The apiserver listens on that address, so pods reach
   it through the ``kubernetes`` Service.
2. **containerd** with its own socket, root and state (never the default paths a Docker Engine
   would find), the CRI plugin with ``restrict_oom_score_adj`` (root here cannot lower
   oom_score_adj), the cgroupfs driver, and a CNI ``bridge`` + ``host-local`` network whose IPAM
   state lives in the node's work dir. The pause and busybox images, and any archives given
   (presize's own images), are imported with ``ctr``: no registry is ever asked.
3. **kubelet** as ``system:node:<name>`` with its own client certificate, authenticating the
   apiserver's client certificate and authorizing through the apiserver (Webhook), its
   rewritten kernel tunables saved first and written back at the end.
4. **kube-proxy** (iptables mode, masquerading all Service traffic so replies return through
   the host) and **CoreDNS** on the node address (cluster names only; any other name is
   answered NXDOMAIN here, nothing is forwarded).

``stop()`` undoes all of it by the pids it recorded: containers are killed through containerd,
the kubelet, kube-proxy, CoreDNS and containerd are stopped by pid, kube-proxy's rules are
cleaned with its own ``--cleanup``, sandbox network namespaces, mounts, cgroups, links, routes,
sysctls and directories it created are removed or restored. One node per machine: the paths
the kubelet uses are fixed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hack.cluster import nodeimages
from hack.cluster.localcluster import (
    POD_CIDR,
    SERVICE_CIDR,
    ClusterError,
    LocalCluster,
    _proc_start_time,
    _tail,
    cache_root,
    pid_alive,
    stop_pid,
    stop_popen,
)

NODE_NAME: Final = "presize-node"
NODE_ADDRESS: Final = "10.253.0.10"
NODE_SUBNET: Final = "10.244.0.0/24"  # this node's pods; the bridge is its .1
BRIDGE: Final = "psz-cni0"
VETH_HOST: Final = "psz-node0"
VETH_PEER: Final = "psz-node1"
DNS_DOMAIN: Final = "cluster.local"
KUBELET_ROOT: Final = Path("/var/lib/kubelet")
POD_LOGS: Final = Path("/var/log/pods")
CONTAINER_LOGS: Final = Path("/var/log/containers")
NETNS_DIR: Final = Path("/run/netns")
CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
STATE_FILE: Final = "node.json"
# Kernel tunables the kubelet (and kube-proxy, and the CNI bridge plugin) may rewrite.
SYSCTLS: Final = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
)
BLACKHOLES: Final = (POD_CIDR, SERVICE_CIDR)
# Components in start order; stop goes the other way.
NODE_COMPONENTS: Final = ("containerd", "coredns", "kubelet", "kube-proxy")


def _run(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(argv[:4])} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def read_sysctls(names: Sequence[str] = SYSCTLS) -> dict[str, str]:
    """Current values of the tunables that exist on this kernel."""
    out: dict[str, str] = {}
    for name in names:
        with contextlib.suppress(OSError):
            out[name] = (Path("/proc/sys") / name).read_text().strip()
    return out


def restore_sysctls(saved: dict[str, str]) -> list[str]:
    """Write back every saved value that changed; returns the names written."""
    changed = []
    for name, value in saved.items():
        path = Path("/proc/sys") / name
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value + "\n")
                changed.append(name)
    return changed


def _mounts_under(prefix: Path) -> list[str]:
    want = str(prefix).rstrip("/") + "/"
    targets = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target.startswith(want) or target == want.rstrip("/"):
            targets.append(target)
    return sorted(set(targets), key=len, reverse=True)


def unmount_under(prefix: Path) -> int:
    """Unmount everything mounted at or below ``prefix``, deepest first (lazily, so a mount
    still busy goes away when it is released)."""
    targets = _mounts_under(prefix)
    for target in targets:
        _run("umount", "-l", target, check=False)
    return len(targets)


def is_shared_or_slave(target: Path) -> bool:
    """Whether the mount at ``target`` propagates (``shared:N`` or ``master:N`` in mountinfo).

    The chart mounts the host's cgroups with ``mountPropagation: HostToContainer``, which runc
    refuses on a private mount. systemd makes every mount shared at boot, so real nodes have
    it; this machine's PID 1 is not systemd and its mounts are private."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[4] == str(target):
            optional = fields[6 : fields.index("-")]
            return any(f.startswith(("shared:", "master:")) for f in optional)
    return False


IPTABLES: Final = ("iptables", "ip6tables")
TABLES: Final = ("filter", "nat", "mangle")


def kube_chains() -> dict[str, set[str]]:
    """``KUBE-*`` chains per ``<command>/<table>`` (the kubelet's canaries and firewall,
    kube-proxy's service chains)."""
    out: dict[str, set[str]] = {}
    for cmd in IPTABLES:
        if shutil.which(cmd) is None:
            continue
        for table in TABLES:
            rules = _run(cmd, "-w", "-t", table, "-S", check=False).stdout.splitlines()
            out[f"{cmd}/{table}"] = {r.split()[1] for r in rules if r.startswith("-N KUBE-")}
    return out


def remove_kube_chains(before: dict[str, set[str]]) -> list[str]:
    """Delete the ``KUBE-*`` chains that were not there ``before``, with the rules that jump
    to them from other chains. ``kube-proxy --cleanup`` leaves the kubelet's own chains
    (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) behind."""
    removed = []
    for key, chains in kube_chains().items():
        cmd, table = key.split("/")
        new = chains - before.get(key, set())
        if not new:
            continue
        for rule in _run(cmd, "-w", "-t", table, "-S", check=False).stdout.splitlines():
            parts = rule.split()
            if parts[:1] == ["-A"] and parts[1] not in new and any(c in parts for c in new):
                _run(cmd, "-w", "-t", table, "-D", *parts[1:], check=False)
        for chain in new:
            _run(cmd, "-w", "-t", table, "-F", chain, check=False)
        for chain in new:
            _run(cmd, "-w", "-t", table, "-X", chain, check=False)
            removed.append(f"{key}/{chain}")
    return removed


def remove_cgroup_tree(top: Path) -> int:
    """rmdir every cgroup directory under ``top`` (and ``top``), bottom-up. Cgroup directories
    cannot be removed recursively; each must be empty of tasks and children."""
    if not top.is_dir():
        return 0
    dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))
    removed = 0
    for d in [*reversed(dirs), top]:
        with contextlib.suppress(OSError):
            d.rmdir()
            removed += 1
    return removed


def kubepods_cgroups() -> list[Path]:
    """The kubelet's cgroupfs-driver roots in every mounted v1 hierarchy (and the v2 one)."""
    if not CGROUP_ROOT.is_dir():
        return []
    out = []
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / "kubepods"
        if top.is_dir():
            out.append(top)
    return out


def _ours(route: str) -> bool:
    """A route to one of the node's ranges or its address (other tiers' routes come and go)."""
    return any(net in route for net in ("10.244.", "10.96.", NODE_ADDRESS))


def host_snapshot() -> dict[str, Any]:
    """The host state a node touches, to compare before start and after stop."""
    links = [line.split()[0] for line in _run("ip", "-br", "link").stdout.splitlines() if line]
    routes = _run("ip", "-4", "route", "show", "table", "all").stdout.splitlines()
    mounts = [
        m
        for top in (KUBELET_ROOT, NETNS_DIR, Path("/run/presize-node"))
        for m in _mounts_under(top)
    ]
    return {
        "sysctls": read_sysctls(),
        "routes": sorted(r for r in routes if r.split()[-1:] and _ours(r)),
        "links": sorted(n for n in links if n.startswith(("psz-", "cni"))),
        "iptables": {k: sorted(v) for k, v in kube_chains().items()},
        "mounts": sorted(mounts),
        "kubepods_cgroups": sorted(str(p) for p in kubepods_cgroups()),
        "cgroup_propagates": is_shared_or_slave(CGROUP_ROOT),
        "dirs": {str(d): d.exists() for d in (KUBELET_ROOT, POD_LOGS, CONTAINER_LOGS)},
    }


@dataclass
class NodeNetwork:
    """The host network state the node needs; ``teardown`` removes exactly what ``setup`` added."""

    address: str = NODE_ADDRESS
    added_routes: list[str] = field(default_factory=list)
    added_links: list[str] = field(default_factory=list)

    def setup(self) -> None:
        routes = _run("ip", "-4", "route", "show", "table", "main", "type", "blackhole").stdout
        for cidr in BLACKHOLES:
            if cidr not in routes:
                _run("ip", "route", "add", "blackhole", cidr)
                self.added_routes.append(cidr)
        if _run("ip", "link", "show", VETH_HOST, check=False).returncode != 0:
            _run("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_PEER)
            self.added_links.append(VETH_HOST)
        _run("ip", "addr", "replace", f"{self.address}/32", "dev", VETH_HOST)
        _run("ip", "link", "set", VETH_HOST, "up")
        _run("ip", "link", "set", VETH_PEER, "up")

    def teardown(self) -> None:
        for link in (BRIDGE, *self.added_links):
            _run("ip", "link", "delete", link, check=False)
        for cidr in self.added_routes:
            _run("ip", "route", "delete", "blackhole", cidr, check=False)
        self.added_routes.clear()
        self.added_links.clear()


@dataclass
class _NodeProc:
    name: str
    popen: subprocess.Popen[bytes]
    start_time: int | None
    log: Path


class RealNode:
    """A real kubelet node joined to ``cluster`` (which must run with ``node_address`` set to
    this node's address). Use ``start()``/``stop()`` or as a context manager."""

    def __init__(
        self,
        cluster: LocalCluster,
        workdir: Path,
        *,
        name: str = NODE_NAME,
        image_archives: Sequence[Path] = (),
        network: NodeNetwork | None = None,
        startup_timeout: float = 120.0,
    ) -> None:
        if cluster.node_address is None:
            raise ClusterError("the cluster must be started with node_address for a real node")
        self.cluster = cluster
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.address = cluster.node_address
        self.image_archives = list(image_archives)
        self.network = network or NodeNetwork(self.address)
        self.startup_timeout = startup_timeout
        self.run_dir = Path("/run/presize-node")  # short: the socket path must fit 108 bytes
        self.socket = self.run_dir / "containerd.sock"
        self.log_dir = self.workdir / "logs"
        self._procs: dict[str, _NodeProc] = {}
        self._saved_sysctls: dict[str, str] = {}
        self._created_dirs: list[Path] = []
        self._netns_before: set[str] = set()
        self._made_shared: list[Path] = []
        self._chains_before: dict[str, set[str]] | None = None
        self.timings: dict[str, float] = {}

    # ---- lifecycle

    def __enter__(self) -> RealNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        t0 = time.monotonic()
        try:
            self._prepare()
            self._start_containerd()
            self.import_images([*self._base_archives(), *self.image_archives])
            self.timings["images_imported"] = time.monotonic() - t0
            self._start_coredns()
            self._start_kubelet()
            self._start_kube_proxy()
            self._wait(lambda: self.cluster.node_ready(self.name), "node Ready")
            self.timings["node_ready"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Undo everything ``start`` did, tolerating a half-started node. Idempotent."""
        proxy = self._procs.pop("kube-proxy", None)
        if proxy is not None:
            stop_popen(proxy.popen, 15)
            _run(str(self.cluster.binaries.kube_proxy), "--cleanup", check=False)
        kubelet = self._procs.pop("kubelet", None)
        if kubelet is not None:
            stop_popen(kubelet.popen, 15)
        if "containerd" in self._procs:
            self._kill_containers()
        for name in ("coredns", "containerd"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                stop_popen(proc.popen, 20)
        self._remove_sandbox_netns()
        for top in (KUBELET_ROOT, self.run_dir, self.workdir / "containerd"):
            unmount_under(top)
        for top in kubepods_cgroups():
            remove_cgroup_tree(top)
        if self._chains_before is not None:
            remove_kube_chains(self._chains_before)
            self._chains_before = None
        self.network.teardown()
        for target in self._made_shared:
            _run("mount", "--make-rprivate", str(target), check=False)
        self._made_shared.clear()
        restore_sysctls(self._saved_sysctls)
        for d in reversed(self._created_dirs):
            shutil.rmtree(d, ignore_errors=True)
        self._created_dirs.clear()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self._write_state(running=False)

    # ---- use

    @property
    def pids(self) -> dict[str, int]:
        return {n: p.popen.pid for n, p in self._procs.items()}

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run("ctr", "--address", str(self.socket), "-n", "k8s.io", *args, timeout=timeout)

    def import_images(self, archives: Sequence[Path]) -> None:
        for archive in archives:
            self.ctr("images", "import", str(archive))

    def exited(self) -> dict[str, int]:
        return {n: rc for n, p in self._procs.items() if (rc := p.popen.poll()) is not None}

    # ---- internals

    def _wait(self, probe: Callable[[], bool], what: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while time.monotonic() < deadline:
            if dead := self.exited():
                name = next(iter(dead))
                raise ClusterError(f"{name} exited {dead[name]}:\n{_tail(self._procs[name].log)}")
            with contextlib.suppress(OSError, ValueError):
                if probe():
                    return
            time.sleep(0.5)
        raise ClusterError(f"real node: {what} not reached in time; logs in {self.log_dir}")

    def _mkdir(self, path: Path) -> Path:
        """Create ``path``; remember its first missing ancestor so ``stop`` removes it."""
        first_missing = None
        for p in [path, *path.parents]:
            if p.exists():
                break
            first_missing = p
        path.mkdir(parents=True, exist_ok=True)
        if first_missing is not None:
            self._created_dirs.append(first_missing)
        return path

    def _prepare(self) -> None:
        for tool in ("containerd", "runc", "ctr", "ip", "iptables"):
            if shutil.which(tool) is None:
                raise ClusterError(
                    f"{tool} not found: apt-get install -y containerd runc "
                    "containernetworking-plugins busybox-static iproute2 iptables"
                )
        if not Path("/usr/lib/cni/bridge").exists():
            raise ClusterError("no CNI plugins: apt-get install -y containernetworking-plugins")
        for b in ("kubelet", "kube_proxy", "coredns"):
            if not getattr(self.cluster.binaries, b).exists():
                raise ClusterError(f"{b} not built: run hack/cluster/build.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self._check_not_in_use()
        self._saved_sysctls = read_sysctls()
        self._chains_before = kube_chains()
        self._netns_before = set(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else set()
        for d in (KUBELET_ROOT, POD_LOGS, CONTAINER_LOGS, self.run_dir):
            self._mkdir(d)
        if not is_shared_or_slave(CGROUP_ROOT):
            _run("mount", "--make-rshared", str(CGROUP_ROOT))
            self._made_shared.append(CGROUP_ROOT)
        self._write_state(running=True)
        # Nothing must leave: the blackholes go in before any component starts (the cluster's
        # apiserver already listens on the node address, set up by NodeNetwork before it).
        self.network.setup()

    def _check_not_in_use(self) -> None:
        state = self.workdir / STATE_FILE
        if not state.exists():
            return
        old = json.loads(state.read_text(encoding="utf-8"))
        for name, p in old.get("processes", {}).items():
            if pid_alive(int(p["pid"]), p.get("start_time")):
                raise ClusterError(f"a real node still runs here: {name} (pid {p['pid']})")

    def _write_state(self, *, running: bool) -> None:
        state = {
            "running": running,
            "name": self.name,
            "address": self.address,
            "sysctls": self._saved_sysctls,
            "routes": self.network.added_routes,
            "links": self.network.added_links,
            "created_dirs": [str(d) for d in self._created_dirs],
            "made_shared": [str(d) for d in self._made_shared],
            "processes": {
                n: {"pid": p.popen.pid, "start_time": p.start_time, "log": str(p.log)}
                for n, p in self._procs.items()
            },
        }
        if self.workdir.exists():
            (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    def _spawn(self, name: str, argv: Sequence[str]) -> _NodeProc:
        log = self.log_dir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.pop("KUBECONFIG", None)
        with log.open("ab") as out:
            out.write(f"==> {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
            )
        proc = _NodeProc(name, popen, _proc_start_time(popen.pid), log)
        self._procs[name] = proc
        self._write_state(running=True)
        return proc

    def _base_archives(self) -> list[Path]:
        cache = nodeimages_cache()
        return [nodeimages.pause_archive(cache), nodeimages.busybox_archive(cache)]

    # -- containerd

    def containerd_config(self) -> str:
        root = self.workdir / "containerd"
        cni = self.workdir / "cni"
        return f"""version = 2
root = "{root}/root"
state = "{self.run_dir}/state"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{nodeimages.PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}/net.d"
"""

    def cni_conflist(self) -> dict[str, Any]:
        gateway = NODE_SUBNET.rsplit(".", 1)[0] + ".1"
        return {
            "cniVersion": "1.0.0",
            "name": "presize-node",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,  # pods talk to this machine only
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.workdir / "cni" / "ipam"),
                        "ranges": [[{"subnet": NODE_SUBNET, "gateway": gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "loopback"},
            ],
        }

    def _start_containerd(self) -> None:
        netd = self.workdir / "cni" / "net.d"
        netd.mkdir(parents=True, exist_ok=True)
        (netd / "10-presize-node.conflist").write_text(json.dumps(self.cni_conflist(), indent=2))
        config = self.workdir / "containerd.toml"
        config.write_text(self.containerd_config())
        self._spawn("containerd", ["containerd", "--config", str(config)])
        self._wait(
            lambda: (
                _run("ctr", "--address", str(self.socket), "version", check=False).returncode == 0
            ),
            "containerd answering",
            60,
        )

    def _kill_containers(self) -> None:
        """Kill every container and sandbox through containerd before it stops (its shims
        outlive it otherwise). The kubelet is already stopped, so nothing restarts them."""
        ctr = ["ctr", "--address", str(self.socket), "-n", "k8s.io"]
        tasks = _run(*ctr, "tasks", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            _run(*ctr, "tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False)
        deadline = time.monotonic() + 20
        for task in tasks:
            while time.monotonic() < deadline:
                if _run(*ctr, "tasks", "delete", task, check=False).returncode == 0:
                    break
                time.sleep(0.3)
        for container in _run(*ctr, "containers", "ls", "-q", check=False).stdout.split():
            _run(*ctr, "containers", "delete", container, check=False)

    def _remove_sandbox_netns(self) -> None:
        if not NETNS_DIR.is_dir():
            return
        for entry in set(os.listdir(NETNS_DIR)) - self._netns_before:
            if entry.startswith("cni-"):
                _run("ip", "netns", "delete", entry, check=False)

    # -- CoreDNS

    def _start_coredns(self) -> None:
        kubeconfig = self.cluster.issue_client_kubeconfig(
            "coredns", "system:coredns", groups=["system:masters"]
        )
        corefile = self.workdir / "Corefile"
        corefile.write_text(
            f"""{DNS_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {self.address}
    errors
    health {self.address}:8053
    kubernetes {DNS_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
    }}
}}
# Names outside the cluster are answered here, never forwarded: nothing leaves the host.
.:53 {{
    bind {self.address}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""
        )
        self._spawn("coredns", [str(self.cluster.binaries.coredns), "-conf", str(corefile)])

    # -- kubelet

    def kubelet_config(self) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,  # this machine's hierarchy is v1; 1.35 refuses it otherwise
            "cgroupDriver": "cgroupfs",  # PID 1 is not systemd
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": self.address,
            "healthzBindAddress": "127.0.0.1",
            "resolvConf": "",
            "clusterDNS": [self.address],
            "clusterDomain": DNS_DOMAIN,
            "imageGCHighThresholdPercent": 100,  # imported images can never be pulled again
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%"},
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.cluster.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "serializeImagePulls": False,
            "registerNode": True,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
        }

    def _start_kubelet(self) -> None:
        kubeconfig = self.cluster.issue_client_kubeconfig(
            "kubelet", f"system:node:{self.name}", groups=["system:nodes"]
        )
        config = self.workdir / "kubelet.json"
        config.write_text(json.dumps(self.kubelet_config(), indent=2))
        self._spawn(
            "kubelet",
            [
                str(self.cluster.binaries.kubelet),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.address}",
                f"--cert-dir={self.workdir / 'kubelet-pki'}",
                "--v=1",
            ],
        )

    # -- kube-proxy

    def _start_kube_proxy(self) -> None:
        kubeconfig = self.cluster.issue_client_kubeconfig("kube-proxy", "system:kube-proxy")
        config = self.workdir / "kube-proxy.json"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(kubeconfig)},
                    "mode": "iptables",
                    "clusterCIDR": POD_CIDR,
                    "hostnameOverride": self.name,
                    "bindAddress": self.address,
                    "healthzBindAddress": "127.0.0.1:10256",
                    "metricsBindAddress": "127.0.0.1:10249",
                    # Replies to Service traffic come back through the host, so no
                    # br_netfilter is needed for pod-to-pod Service calls on one bridge.
                    "iptables": {"masqueradeAll": True, "localhostNodePorts": False},
                    # Leave the host's conntrack table sizes alone.
                    "conntrack": {"maxPerCore": 0, "min": 0},
                    "nodePortAddresses": [f"{self.address}/32"],
                }
            )
        )
        self._spawn("kube-proxy", [str(self.cluster.binaries.kube_proxy), f"--config={config}"])


def nodeimages_cache() -> Path:
    return cache_root() / "images"


def down(workdir: Path) -> list[str]:
    """Stop a node recorded in ``workdir`` by its pids (when its Python owner died)."""
    state_path = Path(workdir) / STATE_FILE
    if not state_path.exists():
        return []
    state = json.loads(state_path.read_text(encoding="utf-8"))
    stopped = []
    for name in reversed(NODE_COMPONENTS):
        p = state.get("processes", {}).get(name)
        if p and stop_pid(int(p["pid"]), p.get("start_time")):
            stopped.append(name)
    return stopped


class RealCluster:
    """The local control plane plus one real node, in the order the network rule needs: host
    network (blackholes, node address) → control plane on the node address → node. ``stop``
    goes the other way. ``timings`` holds seconds to control plane up and to node Ready."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        image_archives: Sequence[Path] = (),
        startup_timeout: float = 180.0,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.network = NodeNetwork()
        self.cluster = LocalCluster(
            self.workdir / "cluster",
            nodes=0,
            simulate_resize=False,
            node_address=self.network.address,
            startup_timeout=startup_timeout,
        )
        self.node = RealNode(
            self.cluster,
            self.workdir / "node",
            image_archives=image_archives,
            network=self.network,
        )
        self.timings: dict[str, float] = {}

    def __enter__(self) -> RealCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        t0 = time.monotonic()
        try:
            self.network.setup()
            self.cluster.start()
            self.timings["control_plane_up"] = time.monotonic() - t0
            self.node.start()
            self.timings["node_ready"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.node.stop()
        self.cluster.stop()
        self.network.teardown()


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import signal
    import threading

    parser = argparse.ArgumentParser(
        prog="python -m hack.cluster.realnode",
        description="Start the local control plane and one real kubelet node; Ctrl-C stops "
        "both and restores the host.",
    )
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--dir", required=True, help="work dir (pki, logs, node state)")
    parser.add_argument(
        "--image", action="append", default=[], type=Path, help="image archive to import"
    )
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    real = RealCluster(args.dir, image_archives=args.image)
    try:
        real.start()
        print(json.dumps({"kubeconfig": str(real.cluster.kubeconfig), **real.timings}))
        print(f"node {real.node.name} Ready; pids {real.node.pids}; Ctrl-C to stop", flush=True)
        while not stop.wait(1.0):
            if dead := real.node.exited() or real.cluster.exited():
                print(f"exited: {dead}", flush=True)
                return 1
        return 0
    except ClusterError as err:
        print(f"error: {err}", flush=True)
        return 1
    finally:
        real.stop()


if __name__ == "__main__":
    import sys

    sys.exit(_main())
