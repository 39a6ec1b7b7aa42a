"""loa-console: the provincial side of loa-agent, for demos, integrators and the project's tests.

Server-side tooling, a distribution of its own (console/setup.py): a box does not carry a fleet-wide
signing and publishing tool. Topic names come from the agent's `agent.topics`.

    keys    generate_keypair(directory, kid), load_private_key(path),
            make_claims(type_, params=None, *, jti=None, iat=None, lifetime_s=600, aud=None, now=None, **extra),
            sign(claims, private_key, kid) -> compact JWS
    pki     make_pki(directory, devices, san=..., days=...), revoke(directory, devices, days=...) -> crl.pem
    broker  Broker(host, port, ...): publish(), watch(), close(); a context manager
    bundle  build_bundle(source, out, key_path, kid, *, version=None, wheels=None, python=None, machine=None)
            -> (path, sha256): a signed release bundle; pack(wheels, out, private_key, kid, ...) -> path;
            sign_manifest(data, private_key, kid) -> detached JWS
    cli     main(argv) -> exit status: keygen, send, schedule, watch, pki, bundle
"""

__version__ = "0.1.0"
PROG = "loa-console"
