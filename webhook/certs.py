"""Serving certificates: load from files and follow changes, or generate a CA and a cert.

The only module of the webhook that imports ``cryptography``.

**Reload without restart.** The API server keeps connections to the webhook open, and a
restart would drop admissions in flight. cert-manager (or a Secret update projected into the
pod) replaces the files in place, so :class:`CertReloader` polls their modification time and
size and, when they change, loads them into the *same* ``SSLContext`` the server listens with.
OpenSSL uses the context's current certificate for every new handshake, so new connections get
the new certificate and open ones are untouched. A half-written pair fails to load; the old
certificate then stays and the next poll tries again.

**Generated certificates.** Without cert-manager, :func:`ensure_certificates` makes an EC
P-256 CA (10 years) and a serving certificate signed by it (1 year), writes them atomically
(temp file + rename), and renews the serving certificate when it is within ``renew_before`` of
expiry. The CA PEM is what goes into the webhook configuration's ``caBundle``. Time is a
parameter, so expiry logic is tested with fixed dates.

**Shared in a Secret.** With several replicas, each generating its own CA would leave the
``caBundle`` trusting only the last one. :func:`ensure_secret_certificates` keeps one CA and
serving pair in a Secret instead: reuse it while fresh, otherwise generate and write with the
resourceVersion just read (optimistic concurrency: on a 409 the loser re-reads and uses the
winner's). :class:`SecretCertRotator` repeats that every hour and so rotates before expiry.
The Secret API itself is behind :class:`SecretStore` (``webhook.kube`` implements it).

TLS 1.2 is the minimum; Python's defaults choose the ciphers (the API server's Go client
negotiates TLS 1.3 where it can).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.metrics import WebhookMetrics

log = logging.getLogger(__name__)

CA_DAYS = 3650
SERVING_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class CertPair:
    """A PEM certificate and its PEM private key."""

    cert_pem: bytes
    key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_ca(*, common_name: str, now: dt.datetime, days: int = CA_DAYS) -> CertPair:
    """A self-signed CA that may sign serving certificates (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate clock skew
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def generate_serving(
    ca: CertPair, *, hosts: list[str], now: dt.datetime, days: int = SERVING_DAYS
) -> CertPair:
    """A serving certificate for ``hosts`` (DNS names or IP addresses), signed by ``ca``."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one host")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def not_after(cert_pem: bytes) -> dt.datetime:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class CertFiles:
    """Where the certificate material lives."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def cert(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key(self) -> Path:
        return self.directory / "tls.key"


def ensure_certificates(
    files: CertFiles,
    *,
    hosts: list[str],
    now: dt.datetime,
    renew_before: dt.timedelta = RENEW_BEFORE,
) -> tuple[bytes, bool]:
    """Make sure a valid CA and serving certificate exist; returns (CA PEM, CA was created).

    Existing files are reused until they come within ``renew_before`` of expiry.
    """
    files.directory.mkdir(parents=True, exist_ok=True)
    ca: CertPair | None = None
    if files.ca_cert.exists() and files.ca_key.exists():
        ca = CertPair(files.ca_cert.read_bytes(), files.ca_key.read_bytes())
        if not_after(ca.cert_pem) - renew_before <= now:
            ca = None
    created = ca is None
    if ca is None:
        ca = generate_ca(common_name="presize-webhook-ca", now=now)
        _write_atomic(files.ca_key, ca.key_pem, 0o600)
        _write_atomic(files.ca_cert, ca.cert_pem)
    serving_ok = (
        not created
        and files.cert.exists()
        and files.key.exists()
        and not_after(files.cert.read_bytes()) - renew_before > now
    )
    if not serving_ok:
        serving = generate_serving(ca, hosts=hosts, now=now)
        _write_atomic(files.key, serving.key_pem, 0o600)
        _write_atomic(files.cert, serving.cert_pem)
    return ca.cert_pem, created


def server_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context with the given pair loaded, TLS 1.2 or newer only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


class CertReloader:
    """Reloads ``cert_file``/``key_file`` into ``ctx`` when either changes on disk."""

    def __init__(
        self, ctx: ssl.SSLContext, cert_file: Path, key_file: Path, *, interval_s: float,
        metrics: WebhookMetrics,
    ) -> None:  # fmt: skip
        self.ctx = ctx
        self.cert_file = cert_file
        self.key_file = key_file
        self.interval_s = interval_s
        self._metrics = metrics
        self._seen = self._signature()

    def _signature(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in (self.cert_file, self.key_file):
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append((0, 0, 0))
        return tuple(out)

    def check_once(self) -> bool | None:
        """Reload if the files changed: ``True`` reloaded, ``False`` failed, ``None`` no change."""
        signature = self._signature()
        if signature == self._seen:
            return None
        try:
            self.ctx.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:  # e.g. caught between the two writes
            self._metrics.cert_reloads.labels(result="error").inc()
            log.warning("serving certificate reload failed, keeping the old one: %s", exc)
            return False
        self._seen = signature
        self._metrics.cert_reloads.labels(result="ok").inc()
        log.info("serving certificate reloaded from %s", self.cert_file)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            with contextlib.suppress(Exception):  # never let a reload bug stop serving
                self.check_once()


# ---------------------------------------------------------------- certificates in a Secret

SECRET_KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key", "ca-bundle.crt")


class CertSecretError(Exception):
    """The shared Secret could not be read or written, or never settled."""


class SecretStore(Protocol):
    """One Secret's ``data`` (base64 values) and resourceVersion; see ``webhook.kube``."""

    def read(self) -> tuple[dict[str, str], str]: ...

    def replace(self, data: dict[str, str], resource_version: str) -> bool:
        """Write ``data`` if the Secret is still at ``resource_version``; ``False`` on 409."""
        ...


@dataclass(frozen=True, slots=True)
class CertMaterial:
    """A CA, the serving pair it signed, and the ``caBundle`` (this CA, then the previous one
    while it is still valid, so replicas not yet rotated stay trusted)."""

    ca: CertPair
    serving: CertPair
    ca_bundle: bytes

    def to_secret_data(self) -> dict[str, str]:
        values = (
            self.ca.cert_pem, self.ca.key_pem, self.serving.cert_pem, self.serving.key_pem,
            self.ca_bundle,
        )  # fmt: skip
        encoded = (base64.b64encode(v).decode("ascii") for v in values)
        return dict(zip(SECRET_KEYS, encoded, strict=True))

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str] | None) -> CertMaterial | None:
        """The material in a Secret's ``data``, or ``None`` when it is absent or incomplete."""
        if not data or any(not isinstance(data.get(k), str) for k in SECRET_KEYS[:4]):
            return None
        try:
            ca_cert, ca_key, cert, key = (base64.b64decode(data[k]) for k in SECRET_KEYS[:4])
            bundle = base64.b64decode(data.get("ca-bundle.crt") or "") or ca_cert
        except ValueError:
            return None
        return cls(CertPair(ca_cert, ca_key), CertPair(cert, key), bundle)


def _expiry(cert_pem: bytes) -> dt.datetime | None:
    try:
        return not_after(cert_pem)
    except ValueError:
        return None


def material_is_fresh(
    material: CertMaterial, *, now: dt.datetime, renew_before: dt.timedelta = RENEW_BEFORE
) -> bool:
    """Both certificates parse, the serving one was signed by the CA, neither is due for renewal."""
    try:
        ca = x509.load_pem_x509_certificate(material.ca.cert_pem)
        serving = x509.load_pem_x509_certificate(material.serving.cert_pem)
        serving.verify_directly_issued_by(ca)
        serialization.load_pem_private_key(material.ca.key_pem, password=None)
        serialization.load_pem_private_key(material.serving.key_pem, password=None)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return min(ca.not_valid_after_utc, serving.not_valid_after_utc) - renew_before > now


def renew_material(
    old: CertMaterial | None, *, hosts: list[str], now: dt.datetime,
    renew_before: dt.timedelta = RENEW_BEFORE, ca_days: int = CA_DAYS,
    serving_days: int = SERVING_DAYS,
) -> CertMaterial:  # fmt: skip
    """New material: keep ``old``'s CA while it is valid and not due, else make a new CA
    (the bundle then keeps the old CA too, until it expires)."""
    ca = old.ca if old is not None else None
    ca_expiry = _expiry(ca.cert_pem) if ca is not None else None
    if ca is None or ca_expiry is None or ca_expiry - renew_before <= now:
        fresh_ca = generate_ca(common_name="presize-webhook-ca", now=now, days=ca_days)
        bundle = fresh_ca.cert_pem
        if ca is not None and ca_expiry is not None and ca_expiry > now:
            bundle += ca.cert_pem
        ca = fresh_ca
    else:
        bundle = ca.cert_pem
    try:
        serving = generate_serving(ca, hosts=hosts, now=now, days=serving_days)
    except ValueError:  # the old CA's key is unusable: start over
        ca = generate_ca(common_name="presize-webhook-ca", now=now, days=ca_days)
        bundle = ca.cert_pem
        serving = generate_serving(ca, hosts=hosts, now=now, days=serving_days)
    return CertMaterial(ca, serving, bundle)


def ensure_secret_certificates(
    store: SecretStore, *, hosts: list[str], now: dt.datetime,
    renew_before: dt.timedelta = RENEW_BEFORE, attempts: int = 5,
    ca_days: int = CA_DAYS, serving_days: int = SERVING_DAYS,
) -> tuple[CertMaterial, bool]:  # fmt: skip
    """The material in the shared Secret, made and written first if absent, invalid or due.

    Returns (material, whether this call wrote it). The write carries the resourceVersion just
    read, so of several replicas starting at once exactly one wins; the others get a conflict,
    read again and use the winner's material (it is fresh, so they do not write).
    """
    for _ in range(attempts):
        data, version = store.read()
        current = CertMaterial.from_secret_data(data)
        if current is not None and material_is_fresh(current, now=now, renew_before=renew_before):
            return current, False
        new = renew_material(
            current, hosts=hosts, now=now, renew_before=renew_before, ca_days=ca_days,
            serving_days=serving_days,
        )  # fmt: skip
        if store.replace(new.to_secret_data(), version):
            log.info("wrote new webhook certificates to the shared Secret")
            return new, True
        log.info("another replica updated the certificate Secret first; reading it again")
    raise CertSecretError(f"the certificate Secret kept changing ({attempts} attempts)")


def write_material(files: CertFiles, material: CertMaterial) -> None:
    """Put ``material`` where :func:`server_ssl_context` and the reloader read it."""
    files.directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(files.ca_key, material.ca.key_pem, 0o600)
    _write_atomic(files.ca_cert, material.ca_bundle)
    _write_atomic(files.key, material.serving.key_pem, 0o600)
    _write_atomic(files.cert, material.serving.cert_pem)


class SecretCertRotator:
    """Keeps this replica's certificate in step with the shared Secret.

    :meth:`check_once` (every ``interval_s``, one hour by default) re-reads the Secret, renews
    the material there if it is due (a conflict means another replica did), writes what the
    Secret holds to ``files`` and loads it into ``ctx`` when it changed, and calls ``on_ca``
    with the bundle whenever the bundle changed (the composition root patches ``caBundle``).
    """

    def __init__(
        self, store: SecretStore, files: CertFiles, *, hosts: list[str],
        on_ca: Callable[[bytes], object], clock: Callable[[], dt.datetime],
        metrics: WebhookMetrics, ctx: ssl.SSLContext | None = None,
        renew_before: dt.timedelta = RENEW_BEFORE, interval_s: float = 3600.0,
        ca_days: int = CA_DAYS, serving_days: int = SERVING_DAYS,
    ) -> None:  # fmt: skip
        self.store = store
        self.files = files
        self.hosts = hosts
        self.on_ca = on_ca
        self.clock = clock
        self.ctx = ctx
        self.renew_before = renew_before
        self.interval_s = interval_s
        self.ca_days = ca_days
        self.serving_days = serving_days
        self._metrics = metrics
        self.material: CertMaterial | None = None

    def check_once(self) -> bool:
        """Sync once; ``True`` if this replica's certificate changed. Raises on API errors."""
        material, _ = ensure_secret_certificates(
            self.store, hosts=self.hosts, now=self.clock(), renew_before=self.renew_before,
            ca_days=self.ca_days, serving_days=self.serving_days,
        )  # fmt: skip
        if material == self.material:
            return False
        old_bundle = None if self.material is None else self.material.ca_bundle
        write_material(self.files, material)
        if self.ctx is not None:
            self.ctx.load_cert_chain(self.files.cert, self.files.key)
            self._metrics.cert_reloads.labels(result="ok").inc()
        self.material = material
        if material.ca_bundle != old_bundle:
            self.on_ca(material.ca_bundle)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.check_once)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving the current certificate; retry next time
                self._metrics.cert_reloads.labels(result="error").inc()
                log.warning("certificate Secret check failed: %s: %s", type(exc).__name__, exc)
