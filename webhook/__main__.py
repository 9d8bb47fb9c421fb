"""``presize webhook`` / ``python -m webhook``: the composition root of the webhook.

Reads settings from flags (each with a ``PRESIZE_WEBHOOK_*`` environment default, so a
Deployment can configure it either way), builds every collaborator once, hands them to the
server and runs until SIGTERM or SIGINT. Nothing else in the package reads the environment or
constructs its own collaborators.

Certificates: either ``--tls-cert-file``/``--tls-key-file`` (reloaded when they change), or
``--generate-certs DIR`` (a CA and serving certificate made on start and renewed before
expiry; with ``--webhook-config NAME`` the CA is written into that
MutatingWebhookConfiguration's ``caBundle``), or ``--cert-secret [NAMESPACE/]NAME`` (the CA and
serving certificate shared by all replicas in that Secret, made by whichever replica comes
first, re-checked every ``--cert-check-s`` and rotated before expiry; files go to
``--generate-certs DIR`` or a temporary directory). Without a namespace, the pod's own (from
the service account) is used.

Exit codes: 0 after a clean stop, 2 for bad settings, 1 if the server could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from presize.errors import PresizeError
from presize.model import Bounds, Mode
from presize.units import MIB, parse_bytes, parse_cpu
from webhook.certs import (
    CertFiles,
    CertReloader,
    CertSecretError,
    SecretCertRotator,
    ensure_certificates,
    server_ssl_context,
)
from webhook.metrics import WebhookMetrics
from webhook.mutate import MutateSettings
from webhook.namespaces import NamespaceSource, ResourceLimits, StaticNamespaces
from webhook.server import ServerSettings, Webhook, make_app
from webhook.sizing import Grid, LimitPolicy
from webhook.snapshot import SnapshotCache, SnapshotSource, StaticSnapshot

log = logging.getLogger("webhook")

Background = Callable[[], Coroutine[Any, Any, None]]


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"PRESIZE_WEBHOOK_{name}", default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="presize webhook", description=__doc__.splitlines()[0])
    a = p.add_argument
    a("--host", default=_env("HOST", "0.0.0.0"), help="listen address")
    a("--port", type=int, default=int(_env("PORT", "8443") or 8443), help="0 picks a free port")
    a("--port-file", default=_env("PORT_FILE"), help="write the bound port here once listening")
    a("--tls-cert-file", default=_env("TLS_CERT_FILE"))
    a("--tls-key-file", default=_env("TLS_KEY_FILE"))
    a("--generate-certs", metavar="DIR", default=_env("GENERATE_CERTS"))
    a("--cert-hosts", default=_env("CERT_HOSTS", "127.0.0.1,localhost"), help="comma list")
    a("--cert-secret", default=_env("CERT_SECRET"), help="[NAMESPACE/]NAME: shared certs")
    a("--cert-check-s", type=float, default=float(_env("CERT_CHECK_S", "3600") or 3600))
    a("--webhook-config", default=_env("WEBHOOK_CONFIG"), help="patch caBundle of this MWC")
    a("--cert-reload-s", type=float, default=float(_env("CERT_RELOAD_S", "10") or 10))
    a("--snapshot-url", default=_env("SNAPSHOT_URL"), help="controller's /v1/snapshot")
    a("--snapshot-file", default=_env("SNAPSHOT_FILE"), help="static snapshot (dev, bench)")
    a("--snapshot-refresh-s", type=float, default=float(_env("SNAPSHOT_REFRESH_S", "10") or 10))
    a("--snapshot-timeout-s", type=float, default=float(_env("SNAPSHOT_TIMEOUT_S", "5") or 5))
    a("--snapshot-max-bytes", type=int, default=int(_env("SNAPSHOT_MAX_BYTES", "") or 64 * MIB))
    a("--max-snapshot-age-s", type=float, default=float(_env("MAX_SNAPSHOT_AGE_S", "900") or 900))
    a("--kubeconfig", default=_env("KUBECONFIG"), help="for the namespace/LimitRange cache")
    a("--in-cluster", action="store_true", default=_env("IN_CLUSTER") == "1")
    a("--namespace-refresh-s", type=float, default=float(_env("NAMESPACE_REFRESH_S", "10") or 10))
    a(
        "--limit-policy",
        choices=[p.value for p in LimitPolicy],
        default=_env("LIMIT_POLICY", "keep-ratio"),
    )
    a("--default-mode", choices=[m.value for m in Mode], default=_env("DEFAULT_MODE", "initial"))
    a("--cpu-step-m", type=int, default=int(_env("CPU_STEP_M", "5") or 5))
    a("--memory-step-mi", type=int, default=int(_env("MEMORY_STEP_MI", "1") or 1))
    a("--min-cpu", default=_env("MIN_CPU", "10m"))
    a("--max-cpu", default=_env("MAX_CPU"))
    a("--min-memory", default=_env("MIN_MEMORY", "16Mi"))
    a("--max-memory", default=_env("MAX_MEMORY"))
    a("--mem-peak-factor", type=float, default=float(_env("MEM_PEAK_FACTOR", "1.0") or 1.0))
    a("--cold-start-cpu", default=_env("COLD_START_CPU"), help="default for unprofiled pods")
    a("--cold-start-memory", default=_env("COLD_START_MEMORY"), help="default, unprofiled pods")
    a("--bandwidth-annotations", action="store_true", default=_env("BANDWIDTH") == "1")
    a("--max-body-bytes", type=int, default=int(_env("MAX_BODY_BYTES", "") or 3 * MIB))
    a("--log-level", default=_env("LOG_LEVEL", "INFO"))
    return p


def mutate_settings(args: argparse.Namespace) -> MutateSettings:
    """Settings for ``mutate`` from parsed flags; raises ``PresizeError`` for bad values."""
    cpu = Bounds(
        minimum=parse_cpu(args.min_cpu or "0"),
        maximum=parse_cpu(args.max_cpu) if args.max_cpu else float("inf"),
    )
    memory = Bounds(
        minimum=parse_bytes(args.min_memory or "0"),
        maximum=parse_bytes(args.max_memory) if args.max_memory else float("inf"),
    )
    if args.cpu_step_m < 1 or args.memory_step_mi < 1 or args.mem_peak_factor < 0:
        raise PresizeError("steps must be >= 1 and --mem-peak-factor >= 0")
    return MutateSettings(
        limit_policy=LimitPolicy(args.limit_policy),
        default_mode=Mode(args.default_mode),
        max_snapshot_age_s=args.max_snapshot_age_s,
        grid=Grid(cpu_step_millicores=args.cpu_step_m, memory_step_bytes=args.memory_step_mi * MIB),
        bounds=ResourceLimits(cpu=cpu, memory=memory),
        mem_peak_factor=args.mem_peak_factor,
        bandwidth_annotations=args.bandwidth_annotations,
        cold_start_cpu=parse_cpu(args.cold_start_cpu) if args.cold_start_cpu else None,
        cold_start_memory=parse_bytes(args.cold_start_memory) if args.cold_start_memory else None,
    )


_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _secret_ref(value: str) -> tuple[str, str]:
    """``NAMESPACE/NAME``, or ``NAME`` in this pod's namespace."""
    namespace, _, name = value.rpartition("/")
    if not namespace:
        namespace = _env("NAMESPACE") or (
            _SA_NAMESPACE.read_text(encoding="utf-8").strip() if _SA_NAMESPACE.exists() else ""
        )
    if not namespace or not name:
        raise PresizeError(f"--cert-secret {value!r}: give NAMESPACE/NAME")
    return namespace, name


def _secret_tls(args: argparse.Namespace, metrics: WebhookMetrics) -> tuple[Any, Background]:
    """Certificates shared through a Secret: fetched or made now, re-checked in the background."""
    # imported only when used: the kubernetes client is slow to import and optional
    from webhook.kube import KubeSecretStore, api_client, patch_ca_bundle

    namespace, name = _secret_ref(args.cert_secret)
    api = api_client(None if args.in_cluster and not args.kubeconfig else args.kubeconfig)
    directory = args.generate_certs or tempfile.mkdtemp(prefix="presize-webhook-certs-")
    files = CertFiles(Path(directory))

    def on_ca(bundle: bytes) -> None:
        if args.webhook_config:
            count = patch_ca_bundle(api, args.webhook_config, bundle)
            log.info("caBundle set on %d webhook(s) of %s", count, args.webhook_config)

    rotator = SecretCertRotator(
        KubeSecretStore(api, namespace, name), files, hosts=_hosts(args), on_ca=on_ca,
        clock=lambda: dt.datetime.now(dt.UTC), metrics=metrics, interval_s=args.cert_check_s,
    )  # fmt: skip
    try:
        rotator.check_once()
    except CertSecretError as exc:
        raise PresizeError(str(exc)) from exc
    except Exception as exc:  # the API server's answer (401, 403, 404, unreachable...)
        raise PresizeError(f"certificate Secret {namespace}/{name}: {exc}") from exc
    ctx = server_ssl_context(files.cert, files.key)
    rotator.ctx = ctx
    return ctx, rotator.run


def _hosts(args: argparse.Namespace) -> list[str]:
    return [h.strip() for h in args.cert_hosts.split(",") if h.strip()]


def _tls(args: argparse.Namespace, metrics: WebhookMetrics) -> tuple[Any, list[Background]]:
    """The SSL context and its reloader, from files or freshly generated certificates."""
    if args.cert_secret:
        ctx, task = _secret_tls(args, metrics)
        return ctx, [task]
    if args.generate_certs:
        files = CertFiles(Path(args.generate_certs))
        ca_pem, _ = ensure_certificates(files, hosts=_hosts(args), now=dt.datetime.now(dt.UTC))
        if args.webhook_config:
            # imported only when used: the kubernetes client is slow to import and optional
            from webhook.kube import api_client, patch_ca_bundle

            count = patch_ca_bundle(api_client(args.kubeconfig), args.webhook_config, ca_pem)
            log.info("caBundle set on %d webhook(s) of %s", count, args.webhook_config)
        cert, key = files.cert, files.key
    elif args.tls_cert_file and args.tls_key_file:
        cert, key = Path(args.tls_cert_file), Path(args.tls_key_file)
    else:
        raise PresizeError("give --tls-cert-file and --tls-key-file, or --generate-certs DIR")
    ctx = server_ssl_context(cert, key)
    reloader = CertReloader(ctx, cert, key, interval_s=args.cert_reload_s, metrics=metrics)
    return ctx, [reloader.run]


def _sources(
    args: argparse.Namespace, metrics: WebhookMetrics
) -> tuple[SnapshotSource, NamespaceSource, list[Background]]:
    background: list[Background] = []
    snapshots: SnapshotSource
    if args.snapshot_file:
        snapshots = StaticSnapshot(
            Path(args.snapshot_file), max_bytes=args.snapshot_max_bytes, metrics=metrics
        )
    elif args.snapshot_url:
        cache = SnapshotCache(
            args.snapshot_url,
            refresh_s=args.snapshot_refresh_s,
            timeout_s=args.snapshot_timeout_s,
            max_bytes=args.snapshot_max_bytes,
            metrics=metrics,
        )
        snapshots = cache
        background.append(cache.run)
    else:
        raise PresizeError("give --snapshot-url (the controller) or --snapshot-file")
    namespaces: NamespaceSource = StaticNamespaces()
    if args.kubeconfig or args.in_cluster:
        # imported only when used: the kubernetes client is slow to import and optional
        from webhook.kube import KubeNamespaceCache, api_client

        ns_cache = KubeNamespaceCache(
            api_client(args.kubeconfig),
            refresh_s=args.namespace_refresh_s,
            timeout_s=args.snapshot_timeout_s,
            metrics=metrics,
        )
        namespaces = ns_cache
        background.append(ns_cache.run)
    return snapshots, namespaces, background


async def _serve(args: argparse.Namespace, app: web.Application, ssl_context: Any) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port, ssl_context=ssl_context, backlog=512)
        await site.start()
        port = runner.addresses[0][1]
        log.info("presize webhook listening on https://%s:%d/mutate", args.host, port)
        if args.port_file:
            Path(args.port_file).write_text(f"{port}\n", encoding="utf-8")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    metrics = WebhookMetrics()
    try:
        settings = mutate_settings(args)
        ssl_context, cert_tasks = _tls(args, metrics)
        snapshots, namespaces, source_tasks = _sources(args, metrics)
    except (PresizeError, ValueError, OSError) as exc:
        print(f"presize webhook: {exc}", file=sys.stderr)
        return 2
    webhook = Webhook(
        snapshots=snapshots,
        namespaces=namespaces,
        settings=settings,
        metrics=metrics,
        server=ServerSettings(max_body_bytes=args.max_body_bytes),
    )
    app = make_app(webhook, background=[*cert_tasks, *source_tasks])
    try:
        asyncio.run(_serve(args, app, ssl_context))
    except OSError as exc:
        print(f"presize webhook: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
