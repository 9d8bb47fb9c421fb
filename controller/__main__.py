"""``presize controller``: the composition root of the controller.

Everything is wired here: the orchestrator adapter (Kubernetes, or Docker with
``--orchestrator docker``), the profile store, the report authenticator, leader election,
the HTTP edge and the timers. Settings come from flags, each defaulting to an environment
variable ``PRESIZE_CONTROLLER_*`` (as the chart sets them).

On SIGTERM/SIGINT the controller checkpoints every profile (when leading), releases its
lease so a standby takes over at once, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from controller.loop import Controller
from controller.metrics import ControllerMetrics
from controller.orchestrator import Authenticator, Orchestrator, ProfileStore
from controller.runtime import AlwaysLeader, Leadership, Runtime
from controller.server import Edge, SnapshotCache, make_app
from controller.settings import ControllerSettings
from presize.errors import PresizeError
from presize.model import Mode

log = logging.getLogger("controller")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"PRESIZE_CONTROLLER_{name}", default)


def _flag(name: str) -> bool:
    return _env(name, "0").lower() in ("1", "true", "yes")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="presize controller", description=__doc__.splitlines()[0])
    add = p.add_argument
    add(
        "--orchestrator",
        choices=("kubernetes", "docker"),
        default=_env("ORCHESTRATOR", "kubernetes"),
    )
    add(
        "--kubeconfig",
        default=_env("KUBECONFIG", os.environ.get("KUBECONFIG", "")) or None,
        help="kubeconfig file (default: in-cluster service account)",
    )
    add("--docker-socket", default=_env("DOCKER_SOCKET", "/var/run/docker.sock"))
    add(
        "--store-dir",
        default=_env("STORE_DIR", "/var/lib/presize/profiles"),
        help="profile files (docker orchestrator)",
    )
    add("--host", default=_env("HOST", "0.0.0.0"))
    add("--port", type=int, default=int(_env("PORT", "8080")))
    add("--tls-cert", default=_env("TLS_CERT", "") or None)
    add("--tls-key", default=_env("TLS_KEY", "") or None)
    add("--default-mode", choices=[m.value for m in Mode], default=_env("DEFAULT_MODE", "initial"))
    add("--token-audience", default=_env("TOKEN_AUDIENCE", "") or None)
    add(
        "--agent-identity",
        action="append",
        default=None,
        metavar="USERNAME",
        help="username allowed to report, e.g. system:serviceaccount:presize:presize-agent "
        "(repeatable; added to the comma-separated PRESIZE_CONTROLLER_AGENT_IDENTITY). The "
        "kubernetes orchestrator refuses to start without one unless --allow-any-agent",
    )
    add(
        "--allow-any-agent",
        action="store_true",
        default=_flag("ALLOW_ANY_AGENT"),
        help="accept reports from any token the API server authenticates (any ServiceAccount "
        "of the cluster), instead of only --agent-identity; an explicit opt-in, not a default",
    )
    add(
        "--insecure-no-auth",
        action="store_true",
        default=_flag("INSECURE_NO_AUTH"),
        help="accept reports without a token (development only)",
    )
    add("--leader-elect", action=argparse.BooleanOptionalAction, default=_flag("LEADER_ELECT"))
    add("--lease-name", default=_env("LEASE_NAME", "presize-controller"))
    add(
        "--lease-namespace",
        default=_env("LEASE_NAMESPACE", os.environ.get("POD_NAMESPACE", "default")),
    )
    add("--lease-duration", type=float, default=float(_env("LEASE_DURATION_S", "15")))
    add("--renew-deadline", type=float, default=float(_env("RENEW_DEADLINE_S", "10")))
    add("--retry-period", type=float, default=float(_env("RETRY_PERIOD_S", "2")))
    add("--identity", default=os.environ.get("POD_NAME", socket.gethostname()))
    add(
        "--dry-run",
        action="store_true",
        default=_flag("DRY_RUN"),
        help="decide and log everything, change nothing",
    )
    add(
        "--time-scale",
        type=float,
        default=float(_env("TIME_SCALE", "1")),
        help="compress every duration by this factor (demos)",
    )
    add("--step", type=float, default=float(_env("STEP_S", "60")), help="profile step, seconds")
    add("--urgent-period", type=float, default=float(_env("URGENT_PERIOD_S", "5")))
    add("--profile-period", type=float, default=float(_env("PROFILE_PERIOD_S", "30")))
    add("--rollback-window", type=float, default=float(_env("ROLLBACK_WINDOW_S", "300")))
    add("--anomaly-period", type=float, default=float(_env("ANOMALY_PERIOD_S", "300")))
    add("--checkpoint-period", type=float, default=float(_env("CHECKPOINT_PERIOD_S", "60")))
    add("--log-level", default=_env("LOG_LEVEL", "INFO"))
    return p


def settings_from(args: argparse.Namespace) -> ControllerSettings:
    return ControllerSettings(
        step_s=args.step,
        urgent_period_s=args.urgent_period,
        profile_period_s=args.profile_period,
        rollback_window_s=args.rollback_window,
        anomaly_period_s=args.anomaly_period,
        checkpoint_period_s=args.checkpoint_period,
        time_scale=args.time_scale,
    )


def agent_identities(flags: Sequence[str] | None, env: str) -> tuple[str, ...]:
    """The usernames allowed to report: those of the comma-separated environment value, then
    those of ``--agent-identity``, blanks dropped, each once. Pure."""
    names = [*env.split(","), *(flags or ())]
    return tuple(dict.fromkeys(n.strip() for n in names if n.strip()))


def allowed_agents(identities: Sequence[str], *, allow_any: bool) -> tuple[str, ...] | None:
    """Who may report when tokens are checked by TokenReview: ``identities``, or ``None`` (any
    authenticated token) only on the explicit ``--allow-any-agent``. Raises
    :class:`PresizeError` when neither or both are given: a token the API server accepts
    proves who the caller is, not that it is an agent, so "anyone in the cluster" is never a
    silent default. Pure."""
    if allow_any and identities:
        raise PresizeError(
            "--allow-any-agent contradicts --agent-identity "
            f"({', '.join(identities)}): give one or the other"
        )
    if allow_any:
        return None
    if not identities:
        raise PresizeError(
            "no agent identity: with TokenReview authentication, every ServiceAccount of the "
            "cluster would be allowed to send reports. Pass --agent-identity "
            "system:serviceaccount:<namespace>:<agent ServiceAccount> (repeatable; or "
            "PRESIZE_CONTROLLER_AGENT_IDENTITY, comma-separated; the Helm chart sets it), or "
            "--allow-any-agent to accept any authenticated token"
        )
    return tuple(identities)


def _kubernetes(
    args: argparse.Namespace,
) -> tuple[Orchestrator, ProfileStore, Authenticator | None, Leadership]:
    from controller.kube import (
        KubeOrchestrator,
        KubeProfileStore,
        LeaseElector,
        TokenReviewAuthenticator,
        api_client,
    )

    allowed: tuple[str, ...] | None = None
    if not args.insecure_no_auth:  # checked first: a bad configuration fails before any I/O
        allowed = allowed_agents(
            agent_identities(args.agent_identity, _env("AGENT_IDENTITY", "")),
            allow_any=args.allow_any_agent,
        )
    api = api_client(args.kubeconfig)
    orch = KubeOrchestrator(api, default_mode=Mode(args.default_mode))
    store = KubeProfileStore(api)
    auth: Authenticator | None = None
    if not args.insecure_no_auth:
        auth = TokenReviewAuthenticator(api, audience=args.token_audience, allowed=allowed)
        if allowed is None:
            log.warning("--allow-any-agent: any token the API server authenticates may report")
    leadership: Leadership = AlwaysLeader()
    if args.leader_elect:
        leadership = Elected(
            LeaseElector(
                api,
                name=args.lease_name,
                namespace=args.lease_namespace,
                identity=args.identity,
                lease_duration_s=args.lease_duration,
                renew_deadline_s=args.renew_deadline,
                retry_period_s=args.retry_period,
            )
        )
    return orch, store, auth, leadership


def _docker(
    args: argparse.Namespace,
) -> tuple[Orchestrator, ProfileStore, Authenticator | None, Leadership]:
    from controller.docker.engine import EngineClient
    from controller.docker.orchestrator import DockerOrchestrator, DockerSettings
    from controller.docker.store import FileProfileStore

    orch = DockerOrchestrator(
        EngineClient(args.docker_socket), DockerSettings(default_mode=Mode(args.default_mode))
    )
    store = FileProfileStore(args.store_dir)
    auth: Authenticator | None = None
    token = os.environ.get("PRESIZE_CONTROLLER_AGENT_TOKEN")
    if token and not args.insecure_no_auth:
        auth = StaticTokenAuthenticator(token)
    elif not args.insecure_no_auth:
        raise PresizeError(
            "docker orchestrator: set PRESIZE_CONTROLLER_AGENT_TOKEN (the agents' shared "
            "bearer token) or pass --insecure-no-auth"
        )
    return orch, store, auth, AlwaysLeader()


class Elected:
    """A :class:`~controller.kube.LeaseElector` as the runtime's :class:`Leadership`: runs
    until ``stop``, then releases the lease so a standby takes over within one retry."""

    def __init__(self, elector: Any) -> None:
        self.elector = elector

    @property
    def is_leader(self) -> bool:
        return bool(self.elector.is_leader)

    async def run(self, stop: asyncio.Event) -> None:
        task = asyncio.create_task(self.elector.run())
        await stop.wait()
        await self.elector.stop()
        await asyncio.gather(task, return_exceptions=True)


class StaticTokenAuthenticator:
    """One shared bearer token (Docker has no TokenReview); compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def authenticate(self, token: str) -> str | None:
        import hmac

        return "agent" if hmac.compare_digest(token.encode(), self._token) else None


def _ssl(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    return ctx


async def serve(args: argparse.Namespace, parts: tuple[Any, ...]) -> None:
    orch, store, auth, leadership = parts
    metrics = ControllerMetrics()
    controller = Controller(
        orch,
        store,
        settings=settings_from(args),
        metrics=metrics,
        default_mode=Mode(args.default_mode),
        act=not args.dry_run,
    )
    snapshots = SnapshotCache()
    runtime = Runtime(controller, snapshots, leadership)
    edge = Edge(
        authenticator=auth,
        on_report=controller.on_report,
        is_leader=lambda: leadership.is_leader and runtime.led,
        metrics=metrics,
        max_report_bytes=controller.s.max_report_bytes,
        snapshots=snapshots,
        healthy=runtime.healthy,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    start = getattr(orch, "start", None)
    if start is not None:
        started = start()
        if asyncio.iscoroutine(started):
            await started
    runner = web.AppRunner(make_app(edge), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, ssl_context=_ssl(args))
    await site.start()
    log.info(
        "controller serving on %s:%d (%s, dry-run=%s)",
        args.host,
        args.port,
        orch.name,
        args.dry_run,
    )
    try:
        await runtime.run(stop)
    finally:
        await runner.cleanup()
        for part in (orch, store, auth):
            for name in ("stop", "close"):
                closer = getattr(part, name, None)
                if closer is not None:
                    await closer()
                    break


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        parts = _docker(args) if args.orchestrator == "docker" else _kubernetes(args)
        asyncio.run(serve(args, parts))
    except (PresizeError, ValueError, OSError) as exc:
        print(f"presize controller: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
