"""The Helm chart (charts/presize) rendered offline: ``helm lint`` and ``helm template`` for
several value sets, with assertions on the rendered objects.

Needs the pinned helm binary (``hack/cluster/build.sh helm``) and PyPI's PyYAML; skipped with
the reason when either is missing. No cluster is involved: ``lookup`` returns nothing here.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the rendered manifests")

from hack.cluster.localcluster import Binaries  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "presize"
RELEASE = "ps"
NAMESPACE = "presize-system"
FULL = f"{RELEASE}-presize"
URL = "https://127.0.0.1:9443/mutate"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cert-manager": {"certManager": {"enabled": True}},
    "service-monitor": {"serviceMonitor": {"enabled": True}},
    "webhook-url": {"webhook": {"url": URL}},
    "agent-disabled": {"agent": {"enabled": False}},
    "helm-certs": {"webhook": {"tls": {"mode": "helm"}, "excludeNamespaces": ["monitoring"]}},
    "io-throttle": {"agent": {"ioThrottle": {"enabled": True}}},
    "allow-any-agent": {"controller": {"allowAnyAgent": True}},
}

BAD_VALUES: dict[str, dict[str, Any]] = {
    "unknown key": {"webhook": {"replica": 3}},
    "replicas not an integer": {"webhook": {"replicas": "two"}},
    "timeout above 30 s": {"webhook": {"timeoutSeconds": 31}},
    "unknown mode": {"defaultMode": "aggressive"},
    "plain http webhook url": {"webhook": {"url": "http://127.0.0.1:9443/mutate"}},
    "unknown tls mode": {"webhook": {"tls": {"mode": "manual"}}},
    "token lifetime below 10 min": {"agent": {"token": {"expirationSeconds": 60}}},
    "unknown ioThrottle key": {"agent": {"ioThrottle": {"enable": True}}},
    "ioThrottle.enabled not a boolean": {"agent": {"ioThrottle": {"enabled": "yes"}}},
    "agent identity not a list": {"controller": {"agentIdentities": "system:anonymous"}},
    "agent identity with a comma": {"controller": {"agentIdentities": ["a,b"]}},
    "allowAnyAgent not a boolean": {"controller": {"allowAnyAgent": "true"}},
}


def _helm() -> str:
    helm = Binaries.from_cache().helm
    if helm.exists():
        return str(helm)
    found = shutil.which("helm")
    if found:
        return found
    pytest.skip(f"helm not built ({helm}); run hack/cluster/build.sh helm")


def _values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def helm_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_helm(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(tmp_path: Path, values: dict[str, Any], namespace: str = NAMESPACE) -> list[dict]:
    proc = helm_run(
        "template", RELEASE, str(CHART), "-n", namespace, "-f", str(_values_file(tmp_path, values))
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def by_kind(docs: Iterable[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Iterable[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def grants(rules: list[dict], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r.get("apiGroups", [])
        and resource in r.get("resources", [])
        and verb in r.get("verbs", [])
        for r in rules
    )


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return render(tmp_path_factory.mktemp("defaults"), {})


# --------------------------------------------------------------------------------------------
# lint and schema


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_passes(name: str, tmp_path: Path) -> None:
    values = _values_file(tmp_path, VALUE_SETS[name])
    proc = helm_run("lint", "--strict", str(CHART), "-n", NAMESPACE, "-f", str(values))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    render(tmp_path, VALUE_SETS[name])  # and it renders


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(name: str, tmp_path: Path) -> None:
    values = str(_values_file(tmp_path, BAD_VALUES[name]))
    lint = helm_run("lint", str(CHART), "-f", values)
    template = helm_run("template", RELEASE, str(CHART), "-f", values)
    assert lint.returncode != 0, f"helm lint accepted {name}"
    assert template.returncode != 0, f"helm template accepted {name}"
    assert "schema" in template.stderr.lower() or "want" in template.stderr


def test_every_value_is_documented() -> None:
    """Each key of values.yaml has a comment right above it, or sits inside a documented key,
    or is a plain section whose own keys are documented."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    key_re = re.compile(r"^(\s*)([A-Za-z][\w-]*):(.*)$")
    undocumented: list[str] = []
    stack: list[tuple[int, bool]] = []  # (indent, documented) of open ancestors
    for i, line in enumerate(lines):
        m = key_re.match(line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prev = next((p.strip() for p in reversed(lines[:i]) if p.strip()), "")
        commented = prev.startswith("#")
        inherited = any(doc for _, doc in stack)
        nxt = next((n for n in lines[i + 1 :] if n.strip() and not n.strip().startswith("#")), "")
        is_section = m.group(3).strip() == "" and len(nxt) - len(nxt.lstrip()) > indent
        if not (commented or inherited or is_section):
            undocumented.append(line.strip())
        stack.append((indent, commented or inherited))
    assert not undocumented, f"values without a comment: {undocumented}"


# --------------------------------------------------------------------------------------------
# the objects


def test_default_render_has_every_part(defaults: list[dict]) -> None:
    crds = {d["metadata"]["name"] for d in by_kind(defaults, "CustomResourceDefinition")}
    assert crds == {"workloadprofiles.presize.io", "presizepolicies.presize.io"}
    assert one(defaults, "DaemonSet", f"{FULL}-agent")
    assert {d["metadata"]["name"] for d in by_kind(defaults, "Deployment")} == {
        f"{FULL}-controller",
        f"{FULL}-webhook",
    }
    assert {d["metadata"]["name"] for d in by_kind(defaults, "Service")} == {
        f"{FULL}-controller",
        f"{FULL}-webhook",
    }
    assert len(by_kind(defaults, "ServiceAccount")) == 3
    assert one(defaults, "MutatingWebhookConfiguration", FULL)
    assert not by_kind(defaults, "ServiceMonitor")
    assert not by_kind(defaults, "Certificate")
    for doc in defaults:  # namespaced objects land in the release namespace
        if doc["kind"] not in {
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
            "MutatingWebhookConfiguration",
        }:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]
        assert len(doc["metadata"]["name"]) <= 63


def test_crds_are_structural_with_status_and_printer_columns(defaults: list[dict]) -> None:
    wp = one(defaults, "CustomResourceDefinition", "workloadprofiles.presize.io")
    assert wp["spec"]["group"] == "presize.io"
    (version,) = wp["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    for wanted in (
        "Workload", "Class", "CPU Target", "Memory Target", "Model", "Coverage", "Last Decision",
        "Age",
    ):
        assert wanted in columns

    def untyped(schema: dict, path: str) -> list[str]:
        """Paths without a type: a structural schema types every node."""
        bad = []
        if "type" not in schema and not schema.get("x-kubernetes-int-or-string") and not (
            schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            bad.append(path)
        for key, sub in schema.get("properties", {}).items():
            bad += untyped(sub, f"{path}.{key}")
        if isinstance(schema.get("items"), dict):
            bad += untyped(schema["items"], f"{path}[]")
        if isinstance(schema.get("additionalProperties"), dict):
            bad += untyped(schema["additionalProperties"], f"{path}{{}}")
        return bad

    policy = one(defaults, "CustomResourceDefinition", "presizepolicies.presize.io")
    for crd in (wp, policy):
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert untyped(schema, crd["spec"]["names"]["kind"]) == []
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    mode = policy["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert mode["properties"]["mode"]["enum"] == ["off", "initial", "auto"]
    assert wp["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_mutating_webhook_fails_open_on_opted_in_namespaces(defaults: list[dict]) -> None:
    (hook,) = one(defaults, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"
    assert hook["timeoutSeconds"] == 2
    assert hook["admissionReviewVersions"] == ["v1"]
    (rule,) = hook["rules"]
    assert rule["operations"] == ["CREATE"]
    assert rule["resources"] == ["pods"]
    assert rule["apiGroups"] == [""]
    selector = hook["namespaceSelector"]
    assert selector["matchLabels"] == {"presize.io/enabled": "true"}
    (expr,) = selector["matchExpressions"]
    assert expr["key"] == "kubernetes.io/metadata.name"
    assert expr["operator"] == "NotIn"
    assert set(expr["values"]) == {"kube-system", NAMESPACE}
    service = hook["clientConfig"]["service"]
    assert service["name"] == f"{FULL}-webhook"
    assert service["namespace"] == NAMESPACE
    assert service["path"] == "/mutate"
    assert "url" not in hook["clientConfig"]


def test_excluded_namespaces_follow_release_namespace_and_values(tmp_path: Path) -> None:
    docs = render(tmp_path, {"webhook": {"excludeNamespaces": ["monitoring", "kube-system"]}},
                  namespace="elsewhere")
    (hook,) = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    values = hook["namespaceSelector"]["matchExpressions"][0]["values"]
    assert sorted(values) == ["elsewhere", "kube-system", "monitoring"]


def test_webhook_url_registers_by_url(tmp_path: Path) -> None:
    docs = render(tmp_path, VALUE_SETS["webhook-url"])
    (hook,) = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["clientConfig"]["url"] == URL
    assert "service" not in hook["clientConfig"]
    env = {
        e["name"]: e.get("value")
        for e in one(docs, "Deployment", f"{FULL}-webhook")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    assert "127.0.0.1" in env["PRESIZE_WEBHOOK_CERT_HOSTS"].split(",")


def test_webhook_deployment_pdb_and_service_agree(defaults: list[dict]) -> None:
    deploy = one(defaults, "Deployment", f"{FULL}-webhook")
    assert deploy["spec"]["replicas"] == 2
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    pdb = one(defaults, "PodDisruptionBudget", f"{FULL}-webhook")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = one(defaults, "Service", f"{FULL}-webhook")
    assert svc["spec"]["selector"].items() <= labels.items()
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == f"{FULL}-webhook"
    (container,) = pod["containers"]
    assert container["args"][0] == "webhook"
    assert container["image"] == "presize/webhook:0.1.0"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["allowPrivilegeEscalation"] is False


def test_agent_daemonset(defaults: list[dict]) -> None:
    ds = one(defaults, "DaemonSet", f"{FULL}-agent")
    pod = ds["spec"]["template"]["spec"]
    assert {"operator": "Exists"} in pod["tolerations"]  # every node, whatever its taints
    (container,) = pod["containers"]
    assert container["args"][0] == "agent"
    assert f"--controller-url=http://{FULL}-controller.{NAMESPACE}.svc:8080/v1/reports" in (
        container["args"]
    )
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["cgroup"]["hostPath"]["path"] == "/sys/fs/cgroup"
    assert volumes["proc"]["hostPath"]["path"] == "/proc"
    assert volumes["pod-logs"]["hostPath"]["path"] == "/var/log/pods"
    for name in ("cgroup", "proc", "pod-logs"):
        assert mounts[name]["readOnly"] is True
    host_paths = [v for v in volumes.values() if "hostPath" in v]
    # Nothing else of the host, and all of it read-only.
    assert {v["name"] for v in host_paths} == {"cgroup", "proc", "pod-logs"}
    (source,) = volumes["controller-token"]["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "presize-controller"
    controller_env = {
        e["name"]: e.get("value")
        for e in one(defaults, "Deployment", f"{FULL}-controller")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    assert controller_env["PRESIZE_CONTROLLER_TOKEN_AUDIENCE"] == "presize-controller"
    res = container["resources"]
    assert set(res["requests"]) == {"cpu", "memory"}
    assert set(res["limits"]) == {"cpu", "memory"}
    sc = container["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert not sc.get("privileged")
    assert not pod.get("hostPID")
    assert not pod.get("hostNetwork")


def test_controller_deployment_and_leader_election(defaults: list[dict]) -> None:
    deploy = one(defaults, "Deployment", f"{FULL}-controller")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PRESIZE_CONTROLLER_LEADER_ELECT"] == "1"
    lease = env["PRESIZE_CONTROLLER_LEASE_NAME"]
    role = one(defaults, "Role", f"{FULL}-controller-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [lease],
            "verbs": ["get", "watch", "update", "patch"],
        }
    ]
    assert grants(role["rules"], "coordination.k8s.io", "leases", "create")


def _rules_of(docs: list[dict]) -> list[tuple[str, str, dict]]:
    return [
        (d["kind"], d["metadata"]["name"], rule)
        for d in docs
        if d["kind"] in ("ClusterRole", "Role")
        for rule in d["rules"]
    ]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rbac_is_tight(name: str, tmp_path: Path) -> None:
    docs = render(tmp_path, VALUE_SETS[name])
    for kind, role, rule in _rules_of(docs):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), f"{kind} {role} has a wildcard {field}"
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
        if kind == "ClusterRole":
            assert "secrets" not in rule["resources"], f"{role} grants secrets cluster-wide"
        if "secrets" in rule["resources"]:
            assert rule.get("resourceNames") == [f"{FULL}-webhook-tls"], (role, rule)
            assert not {"create", "list", "delete", "deletecollection"} & set(rule["verbs"])
        if "mutatingwebhookconfigurations" in rule["resources"]:
            assert rule.get("resourceNames") == [FULL], (role, rule)
            assert set(rule["verbs"]) <= {"get", "patch"}
    for binding in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        assert binding["roleRef"]["name"].startswith(FULL)  # never a built-in role
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert subject["namespace"] == NAMESPACE


CONTROLLER_NEEDS = [
    ("", "pods", v) for v in ("get", "list", "watch", "patch")
] + [
    ("", "pods/resize", "patch"),
    ("", "pods/eviction", "create"),
    ("", "events", "create"),
    ("", "events", "patch"),
    ("presize.io", "workloadprofiles", "create"),
    ("presize.io", "workloadprofiles", "update"),
    ("presize.io", "workloadprofiles", "delete"),
    ("presize.io", "workloadprofiles/status", "update"),
    ("presize.io", "workloadprofiles/status", "patch"),
    ("presize.io", "presizepolicies", "watch"),
    ("authentication.k8s.io", "tokenreviews", "create"),
] + [
    (g, r, "watch")
    for g, r in [
        ("", "namespaces"), ("", "limitranges"), ("", "nodes"), ("apps", "replicasets"),
        ("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets"),
        ("batch", "jobs"), ("batch", "cronjobs"),
    ]
]


def test_controller_cluster_role_covers_its_needs_and_no_more(defaults: list[dict]) -> None:
    rules = one(defaults, "ClusterRole", f"{FULL}-controller")["rules"]
    for need in CONTROLLER_NEEDS:
        assert grants(rules, *need), f"controller lacks {need}"
    assert not grants(rules, "", "pods", "delete")
    assert not grants(rules, "", "pods", "create")
    assert not grants(rules, "apps", "deployments", "patch")
    assert not grants(rules, "presize.io", "presizepolicies", "update")


def test_webhook_rbac_per_certificate_mode(defaults: list[dict], tmp_path: Path) -> None:
    cluster_rules = one(defaults, "ClusterRole", f"{FULL}-webhook")["rules"]
    assert grants(cluster_rules, "", "namespaces", "list")
    assert grants(cluster_rules, "", "limitranges", "list")
    assert grants(cluster_rules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations",
                  "patch")
    tls_role = one(defaults, "Role", f"{FULL}-webhook-tls")
    assert grants(tls_role["rules"], "", "secrets", "update")
    secret = one(defaults, "Secret", f"{FULL}-webhook-tls")
    assert not secret.get("data")  # created empty; the webhook fills it
    for name in ("cert-manager", "helm-certs"):
        docs = render(tmp_path, VALUE_SETS[name])
        rules = one(docs, "ClusterRole", f"{FULL}-webhook")["rules"]
        assert not any("mutatingwebhookconfigurations" in r["resources"] for r in rules)
        assert not [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-tls")]


def test_cert_manager(tmp_path: Path) -> None:
    docs = render(tmp_path, VALUE_SETS["cert-manager"])
    mwc = one(docs, "MutatingWebhookConfiguration")
    target = mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    ns, name = target.split("/")
    cert = one(docs, "Certificate", name)
    assert ns == NAMESPACE == cert["metadata"]["namespace"]
    assert cert["spec"]["secretName"] == f"{FULL}-webhook-tls"
    assert f"{FULL}-webhook.{NAMESPACE}.svc" in cert["spec"]["dnsNames"]
    issuer = cert["spec"]["issuerRef"]["name"]
    assert one(docs, "Issuer", issuer)["spec"]["ca"]["secretName"] == f"{FULL}-webhook-ca"
    assert "caBundle" not in mwc["webhooks"][0]["clientConfig"]
    assert not by_kind(docs, "Secret")  # cert-manager makes it
    pod = one(docs, "Deployment", f"{FULL}-webhook")["spec"]["template"]["spec"]
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == f"{FULL}-webhook-tls"


def test_helm_generated_certificates(tmp_path: Path) -> None:
    x509 = pytest.importorskip("cryptography.x509")
    docs = render(tmp_path, VALUE_SETS["helm-certs"])
    secret = one(docs, "Secret", f"{FULL}-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    (hook,) = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    assert cert.issuer == ca.subject
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = sans.get_values_for_type(x509.DNSName)
    assert f"{FULL}-webhook.{NAMESPACE}.svc" in names
    assert f"{FULL}-webhook.{NAMESPACE}.svc.cluster.local" in names


def test_service_monitors_select_the_services(tmp_path: Path) -> None:
    docs = render(tmp_path, VALUE_SETS["service-monitor"])
    monitors = {d["metadata"]["name"]: d for d in by_kind(docs, "ServiceMonitor")}
    assert set(monitors) == {f"{FULL}-agent", f"{FULL}-controller", f"{FULL}-webhook"}
    assert one(docs, "Service", f"{FULL}-agent")["spec"]["clusterIP"] == "None"
    for name, monitor in monitors.items():
        svc = one(docs, "Service", name)
        assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"][
            "labels"
        ].items()
        ports = {p["name"] for p in svc["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def test_agent_disabled(tmp_path: Path) -> None:
    docs = render(tmp_path, VALUE_SETS["agent-disabled"])
    assert not by_kind(docs, "DaemonSet")
    names = {d["metadata"]["name"] for d in docs}
    assert f"{FULL}-agent" not in names
    assert one(docs, "Deployment", f"{FULL}-webhook")


def test_image_values(tmp_path: Path) -> None:
    docs = render(
        tmp_path,
        {
            "webhook": {
                "image": {"repository": "reg.local/wh", "tag": "v9", "pullPolicy": "Never"}
            },
            "imagePullSecrets": ["regcred"],
        },
    )
    pod = one(docs, "Deployment", f"{FULL}-webhook")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "reg.local/wh:v9"
    assert pod["containers"][0]["imagePullPolicy"] == "Never"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


# --------------------------------------------------------------------------------------------
# who may report: the agent's ServiceAccount identity handed to the controller


def _container(docs: list[dict], kind: str, name: str) -> dict:
    (container,) = one(docs, kind, name)["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container["env"]}


OTHER_AGENT = "system:serviceaccount:elsewhere:their-agent"


@pytest.mark.parametrize(
    ("values", "namespace", "agent_sa", "extra"),
    [
        ({}, NAMESPACE, f"{FULL}-agent", []),
        ({}, "elsewhere", f"{FULL}-agent", []),
        ({"fullnameOverride": "pz"}, NAMESPACE, "pz-agent", []),
        ({"agent": {"serviceAccount": {"name": "node-agent"}}}, NAMESPACE, "node-agent", []),
        ({"agent": {"serviceAccount": {"create": False}}}, NAMESPACE, "default", []),
        (
            {"controller": {"agentIdentities": [OTHER_AGENT]}},
            NAMESPACE,
            f"{FULL}-agent",
            [OTHER_AGENT],
        ),
    ],
    ids=["defaults", "other-namespace", "fullname-override", "named-sa", "existing-sa", "extra"],
)
def test_controller_is_given_the_agent_service_account_identity(
    values: dict[str, Any],
    namespace: str,
    agent_sa: str,
    extra: list[str],
    tmp_path: Path,
) -> None:
    """The controller accepts exactly the chart's agent (plus controller.agentIdentities): the
    username a TokenReview reports for the DaemonSet's ServiceAccount in the release
    namespace, and the controller's own parsing of the variable yields it."""
    from controller.__main__ import agent_identities, allowed_agents

    full = values.get("fullnameOverride", FULL)
    docs = render(tmp_path, values, namespace=namespace)
    pod = one(docs, "DaemonSet", f"{full}-agent")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == agent_sa
    env = _env(_container(docs, "Deployment", f"{full}-controller"))
    assert "PRESIZE_CONTROLLER_ALLOW_ANY_AGENT" not in env
    identity = f"system:serviceaccount:{namespace}:{agent_sa}"
    raw = env["PRESIZE_CONTROLLER_AGENT_IDENTITY"]
    assert raw == ",".join([identity, *extra])
    assert allowed_agents(agent_identities(None, raw or ""), allow_any=False) == (
        identity,
        *extra,
    )
    if values.get("agent", {}).get("serviceAccount", {}).get("create", True):
        assert one(docs, "ServiceAccount", agent_sa)["metadata"]["namespace"] == namespace


def test_allow_any_agent_is_an_explicit_value(tmp_path: Path) -> None:
    docs = render(tmp_path, VALUE_SETS["allow-any-agent"])
    env = _env(_container(docs, "Deployment", f"{FULL}-controller"))
    assert env["PRESIZE_CONTROLLER_ALLOW_ANY_AGENT"] == "1"
    assert "PRESIZE_CONTROLLER_AGENT_IDENTITY" not in env  # the controller refuses both


def test_allow_any_agent_and_agent_identities_contradict(tmp_path: Path) -> None:
    values = {"controller": {"allowAnyAgent": True, "agentIdentities": [OTHER_AGENT]}}
    proc = helm_run("template", RELEASE, str(CHART), "-f", str(_values_file(tmp_path, values)))
    assert proc.returncode != 0
    assert "contradict" in proc.stderr


# --------------------------------------------------------------------------------------------
# the agent's I/O action: cgroup mount and flag follow agent.ioThrottle.enabled


@pytest.mark.parametrize(
    ("values", "read_only", "flag", "not_flag"),
    [
        ({}, True, "--no-io-throttle", "--io-throttle"),
        ({"agent": {"ioThrottle": {"enabled": False}}}, True, "--no-io-throttle", "--io-throttle"),
        (VALUE_SETS["io-throttle"], False, "--io-throttle", "--no-io-throttle"),
    ],
    ids=["defaults", "disabled", "enabled"],
)
def test_io_throttle_value_sets_the_cgroup_mount_and_the_agent_flag(
    values: dict[str, Any], read_only: bool, flag: str, not_flag: str, tmp_path: Path
) -> None:
    docs = render(tmp_path, values)
    pod = one(docs, "DaemonSet", f"{FULL}-agent")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["cgroup"]["readOnly"] is read_only
    assert mounts["cgroup"]["mountPath"] == "/host/sys/fs/cgroup"
    assert mounts["proc"]["readOnly"] is True  # only the cgroup tree ever becomes writable
    assert mounts["pod-logs"]["readOnly"] is True
    assert flag in container["args"]
    assert not_flag not in container["args"]
    # Writing root-owned cgroup files as uid 0 needs no capability and no privileged mode.
    sc = container["securityContext"]
    assert sc["runAsUser"] == 0
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert not sc.get("privileged")
    assert sc["allowPrivilegeEscalation"] is False


def test_agent_parses_the_rendered_io_throttle_flag(tmp_path: Path) -> None:
    """The flag the chart passes is one the agent knows, and means what the mount allows."""
    from agent.__main__ import _parser

    for values, expected in (({}, False), (VALUE_SETS["io-throttle"], True)):
        container = _container(render(tmp_path, values), "DaemonSet", f"{FULL}-agent")
        args, unknown = _parser().parse_known_args(container["args"][1:])
        assert unknown == []
        assert args.io_throttle is expected
