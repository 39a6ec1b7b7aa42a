"""loa-console: the provincial side of loa-agent (keys, signed commands and schedules, a test PKI, watch).

Installed on the provincial server or an integrator's machine, never on a box: `pip install ./console`
from a checkout, which also provides the loa-agent it uses for topic names and the broker credentials.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "loa_console/__init__.py").read_text()).group(1)

setup(
    name="loa-console",
    version=VERSION,
    description="The provincial console for loa-agent boxes: sign and send commands and schedules, watch the fleet",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["loa_console", "loa_console.*"]),
    install_requires=[
        "loa-agent",  # agent.topics and agent.mqttclient (the paho client): install it from the same checkout
        "paho-mqtt>=2.1,<3",
        "PyJWT[crypto]>=2.8,<3",  # EdDSA signing; brings cryptography (the Ed25519 keys)
        "PyYAML>=6",  # schedule files
    ],
    entry_points={"console_scripts": ["loa-console = loa_console.cli:main"]},
)
