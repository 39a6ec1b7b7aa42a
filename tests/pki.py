"""A throwaway PKI made with openssl: a CA, a broker certificate for 127.0.0.1, device certificates."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _ssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, devices: tuple[str, ...] = ("GL-0001",)) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    _ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
         "-subj", "/CN=loa test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, ext in [("broker", "subjectAltName=IP:127.0.0.1,DNS:localhost")] + \
            [(dev, "extendedKeyUsage=clientAuth") for dev in devices]:
        _ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        _ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "30", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
        (d / f"{name}.key").chmod(0o600)
    return d
