"""The core's audio layer: what to play (sources, tones, TTS), who may play (arbiter), amplifier relays."""
