"""What the running daemon keeps in memory: the libraries a box pays for (docs/platforms.md, "Memory")."""

from __future__ import annotations

from pathlib import Path

from support.agentproc import Agent
from support.province import Province

from loa_console.keys import load_private_key


def mapped(pid: int) -> list[str]:
    return sorted({line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if "/" in line})


def test_signed_commands_are_verified_with_libsodium_and_cryptography_stays_unloaded(
        agent: Agent, province: Province, keys: dict[str, Path]) -> None:
    assert agent.config["security"]["require_signed"]
    assert province.done(province.send("status.get"))["status"] == "done"  # signed, verified, answered
    other = next(path for kid, path in keys.items() if kid != province.kid)
    province.send("status.get", key=load_private_key(other))  # our kid, another key's signature
    assert province.ack(None)["code"] == "bad_signature"  # unverified claims are not echoed: no id
    assert agent.proc is not None
    libs = mapped(agent.proc.pid)
    assert any("nacl/_sodium" in lib for lib in libs), libs
    # PyJWT would load cryptography's Rust core (12 MB resident): only release bundles and `loa doctor` need it.
    assert not [lib for lib in libs if "cryptography" in lib], libs
