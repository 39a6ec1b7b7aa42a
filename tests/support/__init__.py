"""What the tests and benchmarks share: the real agent process, a real Mosquitto, the province's client, the
ALSA file tap, keys and certificates, media files, the microphone feed, the in-process core with an injected
clock and release bundles. Test modules import from here, never from one another."""
