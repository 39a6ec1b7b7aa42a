"""A lab/test PKI made with openssl: the CA, the broker's certificate, device certificates and the CRL
(config/mosquitto/README.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from agent.topics import DEVICE_ID

DEFAULT_SAN = ("IP:127.0.0.1", "DNS:localhost")
_DNS_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
RESERVED = frozenset({"ca", "broker"})  # file names the CA and the broker use
_CA_NAME = re.compile(r"[A-Za-z0-9._-][A-Za-z0-9 ._-]{0,63}")  # nothing openssl's -subj would parse as syntax

# One openssl config for every certificate: -config for `req`, -extfile for `x509 -req`. Written out here
# rather than relying on the system's openssl.cnf, so the extensions are these and only these.
_OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[broker]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {san}
[device]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


# `openssl ca` only keeps the revocation database here; certificates are issued with `x509 -req` above.
_OPENSSL_CA_CNF = """\
[ca]
default_ca = loa
[loa]
database = index.txt
crlnumber = crlnumber
default_md = sha256
"""


class PkiError(Exception):
    """openssl failed, or the directory holds half of a key pair."""


def san_entry(value: str) -> str:
    """A subjectAltName entry as openssl writes it: "IP:10.0.0.5", "DNS:mqtt.example"; a bare address or
    host name is recognised. ValueError for anything else (a comma would smuggle in more entries)."""
    import ipaddress

    kind, sep, name = value.partition(":")
    if not (sep and kind.upper() in ("IP", "DNS")):
        kind, name = "", value
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if kind.upper() != "DNS" and address is not None:
        return f"IP:{address}"
    if kind.upper() != "IP" and _DNS_NAME.fullmatch(name):
        return f"DNS:{name}"
    raise ValueError(f"bad subjectAltName {value!r}: expected IP:ADDRESS or DNS:NAME")


def _openssl(*args: str, cwd: Path, stdin: bytes | None = None) -> bytes:
    import subprocess  # only the pki command needs it

    try:
        # umask 077: a key is never readable by others, not even between its creation and the chmod below.
        proc = subprocess.run(["openssl", *args], cwd=cwd, input=stdin, capture_output=True, umask=0o077)
    except FileNotFoundError:
        raise PkiError("openssl not found: install the openssl package") from None
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise PkiError(f"openssl {args[0]} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def _issue(d: Path, cnf: Path, name: str, subject: str, section: str, days: int) -> None:
    """name.key (EC P-256, 0600) and name.pem with the extensions of `section`: self-signed for the CA, else
    signed by ca.key. Made under temporary names and renamed, so a failure leaves no half pair behind."""
    import secrets

    key, pem = d / f"{name}.key", d / f"{name}.pem"
    tmp_key, tmp_pem = d / f".{name}.key.tmp", d / f".{name}.pem.tmp"
    try:
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", tmp_key.name, cwd=d)
        tmp_key.chmod(0o600)
        if section == "ca":
            _openssl("req", "-new", "-x509", "-key", tmp_key.name, "-subj", subject, "-days", str(days),
                     "-config", str(cnf), "-extensions", section, "-out", tmp_pem.name, cwd=d)
        else:
            csr = _openssl("req", "-new", "-key", tmp_key.name, "-subj", subject, "-config", str(cnf), cwd=d)
            _openssl("x509", "-req", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial",
                     str(secrets.randbits(120) + 1), "-days", str(days), "-extfile", str(cnf), "-extensions",
                     section, "-out", tmp_pem.name, cwd=d, stdin=csr)
        tmp_pem.chmod(0o644)
        os.replace(tmp_key, key)  # the key first: a .pem is never there without its key
        os.replace(tmp_pem, pem)
    finally:
        tmp_key.unlink(missing_ok=True)
        tmp_pem.unlink(missing_ok=True)


def _have(d: Path, name: str) -> bool:
    """Whether name.key and name.pem are both there; PkiError when only one is (refuse to guess)."""
    key, pem = (d / f"{name}.key").exists(), (d / f"{name}.pem").exists()
    if key != pem:
        present, missing = (f"{name}.key", f"{name}.pem") if key else (f"{name}.pem", f"{name}.key")
        raise PkiError(f"{d / present} exists without {missing}: remove it to make a new pair")
    return key


def make_pki(directory: Path, devices: Iterable[str] = (), *, san: Iterable[str] = DEFAULT_SAN, days: int = 365,
             ca_name: str = "loa-agent test CA") -> dict[str, bool]:
    """A lab/test PKI made with openssl in `directory`: ca.pem/ca.key (a CA valid 10 years), broker.pem/broker.key
    (serverAuth, subjectAltName `san`) and DEVICE.pem/DEVICE.key per device (CN = the device id, clientAuth only).

    Keys are EC P-256, mode 0600. What exists already is kept (re-running adds devices to the same CA).
    Returns {"ca": created?, "broker": created?, device: created?, ...}; ValueError for a bad device id,
    subjectAltName or days, PkiError when openssl fails.
    """
    import tempfile

    ids = list(dict.fromkeys(devices))
    for dev in ids:
        if not DEVICE_ID.fullmatch(dev) or dev in RESERVED:
            raise ValueError(f"bad device id {dev!r}: expected 1-64 of A-Z a-z 0-9 _ - (and not 'ca' or 'broker')")
    sans = [san_entry(s) for s in san]
    if not sans:
        raise ValueError("the broker certificate needs at least one subjectAltName")
    if not 1 <= days <= 3650:
        raise ValueError(f"days must be 1-3650, got {days}")
    if not _CA_NAME.fullmatch(ca_name):
        raise ValueError(f"bad CA name {ca_name!r}: use 1-64 of A-Z a-z 0-9 space . _ -")
    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    made: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cnf = Path(tmp) / "openssl.cnf"
        cnf.write_text(_OPENSSL_CNF.format(san=", ".join(sans)))
        made["ca"] = not _have(d, "ca")
        if made["ca"]:
            _issue(d, cnf, "ca", f"/CN={ca_name}", "ca", 3650)
        made["broker"] = not _have(d, "broker")
        if made["broker"]:
            cn = next((s[4:] for s in sans if s.startswith("DNS:")), sans[0].partition(":")[2])
            _issue(d, cnf, "broker", f"/CN={cn}", "broker", days)
        for dev in ids:
            made[dev] = not _have(d, dev)
            if made[dev]:
                _issue(d, cnf, dev, f"/CN={dev}", "device", days)
    return made


def revoke(directory: Path, devices: Iterable[str], *, days: int = 365) -> Path:
    """Revoke the devices' certificates (recorded in index.txt, openssl ca's database) and write crl.pem, signed by
    the CA and valid `days` days: the broker's `crlfile`, which refuses those certificates in the handshake.
    The CRL must be made again before it expires, or the broker refuses every certificate. Returns crl.pem."""
    import tempfile

    d = Path(directory)
    if not _have(d, "ca"):
        raise PkiError(f"no CA in {d}: make one first")
    if not 1 <= days <= 3650:
        raise ValueError(f"days must be 1-3650, got {days}")
    (d / "index.txt").touch(mode=0o600)
    if not (d / "crlnumber").exists():
        (d / "crlnumber").write_text("01\n")
    with tempfile.TemporaryDirectory() as tmp:
        cnf = Path(tmp) / "ca.cnf"
        cnf.write_text(_OPENSSL_CA_CNF)
        ca = ("-config", str(cnf), "-keyfile", "ca.key", "-cert", "ca.pem")
        for dev in dict.fromkeys(devices):
            if not DEVICE_ID.fullmatch(dev) or dev in RESERVED or not _have(d, dev):
                raise ValueError(f"no certificate for device {dev!r} in {d}")
            serial = _openssl("x509", "-in", f"{dev}.pem", "-noout", "-serial", cwd=d).decode().strip()
            revoked = {line.split("\t")[3] for line in (d / "index.txt").read_text().splitlines()
                       if line.startswith("R\t")}
            if serial.partition("=")[2] not in revoked:  # openssl ca fails on a second revocation
                _openssl("ca", *ca, "-revoke", f"{dev}.pem", cwd=d)
        _openssl("ca", *ca, "-gencrl", "-crldays", str(days), "-out", ".crl.pem.tmp", cwd=d)
    (d / ".crl.pem.tmp").chmod(0o644)
    os.replace(d / ".crl.pem.tmp", d / "crl.pem")
    return d / "crl.pem"
