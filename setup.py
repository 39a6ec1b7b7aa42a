"""loa-agent: edge agent for commune IP loudspeakers and e-boards."""

import importlib.util
import re
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "agent/__init__.py").read_text()).group(1)


class BuildPyWithCatalogues(build_py):
    """Also compiles the `loa` message catalogues (agent/locale/*/LC_MESSAGES/loa.po) into the build's .mo files:
    the .mo are not in git, and every wheel (hence every release bundle) must carry them."""

    def run(self) -> None:
        super().run()
        spec = importlib.util.spec_from_file_location("loa_catalogs", HERE / "agent/catalogs.py")
        catalogs = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(catalogs)
        catalogs.compile_all(HERE / "agent/locale", Path(self.build_lib) / "agent/locale")

setup(
    name="loa-agent",
    version=VERSION,
    description="Edge agent for Vietnam's commune IP loudspeakers and public e-boards",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["agent", "agent.*", "drivers", "drivers.*"]),
    include_package_data=True,
    package_data={"agent.audio": ["lexicon_vi.tsv"]},  # the built-in reading lexicon (agent/audio/reading.py)
    install_requires=[
        # Debian's python3-paho-mqtt is 1.6 and lacks CallbackAPIVersion.VERSION2.
        "paho-mqtt>=2.1,<3",
        # Ed25519 signatures are checked by maintained libraries, never by hand: commands with PyNaCl (libsodium,
        # 1.8 MB resident, agent/jws.py), release bundles and `loa doctor`'s certificates with PyJWT and
        # cryptography, which only those cold paths import (12 MB resident).
        "PyNaCl>=1.5",
        "PyJWT[crypto]>=2.8,<3",
        "PyYAML>=6",
        # Audio: PortAudio output, libVLC decoding, pydub for generated tones and WAV conversion.
        "PyAudio>=0.2.13",
        "python-vlc>=3.0.18",
        "pydub>=0.25",
        "audioop-lts; python_version>='3.13'",  # pydub and our gain need audioop, gone from 3.13's stdlib
        "tzdata",  # zoneinfo on systems without /usr/share/zoneinfo
        "requests>=2.28",  # media downloads (streamed, resumable)
        "defusedxml>=0.7",  # CAP 1.2 XML without entity expansion
        "python-dateutil>=2.8",  # RFC 5545 recurrence (RRULE, EXDATE): never a home-made recurrence engine
        "Pillow>=10",  # e-board frames: text layout with FreeType, image scaling, EXIF orientation, PNG
    ],
    extras_require={
        "test": ["pytest>=8", "ruff>=0.5", "hypothesis>=6", "numpy", "babel>=2.10"],
        # GPIO backends, each only where it can work; imported only when gpio.backend names it.
        "pi": ["RPi.GPIO>=0.7.1; platform_machine in 'armv6l armv7l aarch64'"],
        "gpiod": ["gpiod>=2.1; sys_platform == 'linux'"],
    },
    cmdclass={"build_py": BuildPyWithCatalogues},
    entry_points={
        "console_scripts": [
            "loa-agent = agent.daemon:main",
            "loa = agent.cli:main",
        ],
    },
)
