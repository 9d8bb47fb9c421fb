"""Certificates: generation, reuse and renewal with fixed dates, TLS >= 1.2, and reload of
changed files into the live SSL context of a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509

from webhook.certs import (
    CertFiles,
    CertReloader,
    ensure_certificates,
    generate_ca,
    generate_serving,
    not_after,
    server_ssl_context,
)
from webhook.metrics import WebhookMetrics

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_serving_cert_has_the_hosts_and_chains_to_the_ca() -> None:
    ca = generate_ca(common_name="test-ca", now=T0)
    serving = generate_serving(ca, hosts=["127.0.0.1", "webhook.presize.svc"], now=T0)
    cert = x509.load_pem_x509_certificate(serving.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["webhook.presize.svc"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    assert not_after(serving.cert_pem) == T0 + dt.timedelta(days=365)


def test_certificates_are_reused_then_renewed_before_expiry(tmp_path: Path) -> None:
    files = CertFiles(tmp_path)
    ca1, created = ensure_certificates(files, hosts=["127.0.0.1"], now=T0)
    assert created
    serving1 = files.cert.read_bytes()
    ca2, created = ensure_certificates(files, hosts=["127.0.0.1"], now=T0 + dt.timedelta(days=300))
    assert (ca2, created, files.cert.read_bytes()) == (ca1, False, serving1)
    ca3, created = ensure_certificates(files, hosts=["127.0.0.1"], now=T0 + dt.timedelta(days=340))
    assert ca3 == ca1
    assert not created
    assert files.cert.read_bytes() != serving1  # ... the serving cert was renewed
    assert files.key.stat().st_mode & 0o777 == 0o600


def test_tls_below_1_2_is_refused(tmp_path: Path) -> None:
    files = CertFiles(tmp_path)
    ensure_certificates(files, hosts=["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    ctx = server_ssl_context(files.cert, files.key)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2


async def _peer_cert(port: int, ca: Path) -> bytes:
    client = ssl.create_default_context(cafile=str(ca))
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return bytes(der)


async def test_changed_files_are_served_to_new_connections(tmp_path: Path) -> None:
    files = CertFiles(tmp_path)
    now = dt.datetime.now(dt.UTC)
    ensure_certificates(files, hosts=["127.0.0.1"], now=now)
    ctx = server_ssl_context(files.cert, files.key)
    metrics = WebhookMetrics()
    reloader = CertReloader(ctx, files.cert, files.key, interval_s=0.05, metrics=metrics)
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        before = await _peer_cert(port, files.ca_cert)
        assert reloader.check_once() is None
        files.cert.unlink()  # force a new serving cert from the same CA
        ensure_certificates(files, hosts=["127.0.0.1"], now=now)
        assert reloader.check_once() is True
        after = await _peer_cert(port, files.ca_cert)
        assert after != before
        files.key.write_bytes(b"half-written")  # a broken pair keeps the old certificate
        assert reloader.check_once() is False
        assert await _peer_cert(port, files.ca_cert) == after
    finally:
        await runner.cleanup()
    assert 'presize_webhook_cert_reloads_total{result="error"} 1.0' in metrics.render().decode()


def test_serving_needs_a_host() -> None:
    with pytest.raises(ValueError, match="host"):
        generate_serving(generate_ca(common_name="x", now=T0), hosts=[], now=T0)
