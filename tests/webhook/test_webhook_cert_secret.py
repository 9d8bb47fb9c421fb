"""Certificates shared through a Secret: reuse, first-writer-wins on conflict, rotation.

The Secret API is a tiny in-memory fake with a resourceVersion, just enough to play the race
of two replicas that both read an empty Secret and both try to write. The real API server is
exercised in tests/cluster/test_webhook_secret.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from webhook.__main__ import build_parser, mutate_settings
from webhook.certs import (
    CertFiles,
    CertMaterial,
    CertSecretError,
    SecretCertRotator,
    ensure_secret_certificates,
    material_is_fresh,
    renew_material,
)
from webhook.metrics import WebhookMetrics

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOSTS = ["127.0.0.1", "presize-webhook.presize.svc"]


class FakeSecret:
    """``data`` + resourceVersion; ``replace`` is conditional like the API server's update."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.version = 1
        self.writes = 0
        self.conflicts = 0

    def read(self) -> tuple[dict[str, str], str]:
        return dict(self.data), str(self.version)

    def replace(self, data: dict[str, str], resource_version: str) -> bool:
        if resource_version != str(self.version):
            self.conflicts += 1
            return False
        self.data, self.version, self.writes = dict(data), self.version + 1, self.writes + 1
        return True


class RacingSecret(FakeSecret):
    """Before this replica's first write lands, ``rival`` writes its own material."""

    def __init__(self, rival: CertMaterial) -> None:
        super().__init__()
        self.rival = rival

    def replace(self, data: dict[str, str], resource_version: str) -> bool:
        if self.writes == 0:
            super().replace(self.rival.to_secret_data(), str(self.version))
        return super().replace(data, resource_version)


def ca_subject(material: CertMaterial) -> x509.Certificate:
    return x509.load_pem_x509_certificate(material.ca.cert_pem)


def test_an_empty_secret_is_filled_then_reused() -> None:
    secret = FakeSecret()
    first, wrote = ensure_secret_certificates(secret, hosts=HOSTS, now=NOW)
    assert wrote
    assert secret.writes == 1
    again, wrote_again = ensure_secret_certificates(secret, hosts=HOSTS, now=NOW)
    assert not wrote_again
    assert again == first
    assert secret.writes == 1
    assert material_is_fresh(first, now=NOW)


def test_the_loser_of_a_conflict_uses_the_winners_material() -> None:
    rival = renew_material(None, hosts=HOSTS, now=NOW)
    secret = RacingSecret(rival)
    material, wrote = ensure_secret_certificates(secret, hosts=HOSTS, now=NOW)
    assert secret.conflicts == 1
    assert not wrote
    assert material == rival
    assert CertMaterial.from_secret_data(secret.data) == rival


def test_a_secret_that_never_settles_is_an_error() -> None:
    class Always409(FakeSecret):
        def replace(self, data: dict[str, str], resource_version: str) -> bool:
            self.conflicts += 1
            return False

    with pytest.raises(CertSecretError):
        ensure_secret_certificates(Always409(), hosts=HOSTS, now=NOW, attempts=3)


def test_garbage_in_the_secret_is_replaced() -> None:
    secret = FakeSecret()
    secret.data = {"ca.crt": "bm90IGEgY2VydA==", "ca.key": "x", "tls.crt": "y", "tls.key": "z"}
    material, wrote = ensure_secret_certificates(secret, hosts=HOSTS, now=NOW)
    assert wrote
    assert material_is_fresh(material, now=NOW)


def test_a_serving_cert_signed_by_another_ca_is_not_fresh() -> None:
    a = renew_material(None, hosts=HOSTS, now=NOW)
    b = renew_material(None, hosts=HOSTS, now=NOW)
    assert not material_is_fresh(CertMaterial(a.ca, b.serving, a.ca_bundle), now=NOW)


def test_serving_cert_due_for_renewal_is_renewed_under_the_same_ca() -> None:
    secret = FakeSecret()
    old = renew_material(None, hosts=HOSTS, now=NOW, serving_days=20)  # inside 30-day window
    secret.data = old.to_secret_data()
    new, wrote = ensure_secret_certificates(secret, hosts=HOSTS, now=NOW)
    assert wrote
    assert new.ca == old.ca
    assert new.ca_bundle == old.ca.cert_pem
    assert new.serving != old.serving


def test_a_ca_due_for_renewal_is_replaced_and_the_bundle_keeps_the_old_one() -> None:
    old = renew_material(None, hosts=HOSTS, now=NOW, ca_days=10, serving_days=10)
    new = renew_material(old, hosts=HOSTS, now=NOW)
    assert new.ca != old.ca
    assert new.ca_bundle == new.ca.cert_pem + old.ca.cert_pem
    expired = renew_material(old, hosts=HOSTS, now=NOW + dt.timedelta(days=11))
    assert expired.ca_bundle == expired.ca.cert_pem  # an expired CA is not carried along


def test_rotator_rotates_on_its_clock_and_reports_the_new_bundle(tmp_path: Path) -> None:
    secret = FakeSecret()
    bundles: list[bytes] = []
    now = [NOW]
    rotator = SecretCertRotator(
        secret, CertFiles(tmp_path), hosts=HOSTS, on_ca=bundles.append, clock=lambda: now[0],
        metrics=WebhookMetrics(), ca_days=60, serving_days=60,
    )  # fmt: skip
    assert rotator.check_once()
    assert len(bundles) == 1
    assert (tmp_path / "tls.crt").exists()
    assert not rotator.check_once()  # an hour later nothing is due
    now[0] = NOW + dt.timedelta(days=31)  # inside the 30-day window of a 60-day CA
    assert rotator.check_once()
    assert len(bundles) == 2
    assert bundles[1] != bundles[0]
    assert bundles[1].endswith(bundles[0])  # old CA still trusted until it expires
    assert (tmp_path / "ca.crt").read_bytes() == bundles[1]


def test_cold_start_flags_are_off_by_default_and_parsed() -> None:
    base = ["--snapshot-file", "x.json"]
    off = mutate_settings(build_parser().parse_args(base))
    assert off.cold_start_cpu is None
    assert off.cold_start_memory is None
    assert not off.cold_start
    on = mutate_settings(
        build_parser().parse_args([*base, "--cold-start-cpu", "50m", "--cold-start-memory", "64Mi"])
    )
    assert on.cold_start_cpu == pytest.approx(0.05)
    assert on.cold_start_memory == 64 * 1024 * 1024
