"""Speech through real espeak-ng: the Speaker renders the Reader's words (agent/audio/reading.py), not the raw
text, and caches by those words, so a province lexicon that changes a reading renders anew."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.audio.reading import Reader
from agent.audio.tts import EspeakNg, Speaker, load_wav

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

TEXT = "UBND xã: cắt điện từ 7h30 đến 17h00 ngày 3/12 tại TT Phú Thiện."


def wavs(d: Path) -> set[str]:
    return {p.name for p in d.glob("*.wav")}


def test_the_speaker_renders_the_readers_words_and_caches_by_them(tmp_path):
    speaker = Speaker(tmp_path / "tts", reader=Reader())
    words = speaker.words(TEXT)
    assert words == ("ủy ban nhân dân xã: cắt điện từ bảy giờ ba mươi phút đến mười bảy giờ ngày ba tháng "
                     "mười hai tại trung tâm Phú Thiện.")
    pcm = speaker.speak(TEXT)
    assert wavs(tmp_path / "tts") == {f"{speaker.key(words, 'vi')}.wav"}
    # The very samples espeak-ng makes of the words (it is deterministic), not of the raw text.
    EspeakNg().render(words, "vi", tmp_path / "words.wav")
    EspeakNg().render(TEXT, "vi", tmp_path / "raw.wav")
    assert bytes(pcm.data) == bytes(load_wav(tmp_path / "words.wav").data)
    assert bytes(pcm.data) != bytes(load_wav(tmp_path / "raw.wav").data)
    assert speaker.speak(TEXT).data == pcm.data and len(wavs(tmp_path / "tts")) == 1  # a hit: no new render


def test_a_lexicon_change_renders_anew_and_other_languages_are_left_alone(tmp_path):
    lexicon = tmp_path / "gia-lai.tsv"
    lexicon.write_text("TT\tthị trấn\n", encoding="utf-8")
    built_in = Speaker(tmp_path / "tts", reader=Reader())
    province = Speaker(tmp_path / "tts", reader=Reader([lexicon]))
    built_in.speak(TEXT)
    province.speak(TEXT)
    assert wavs(tmp_path / "tts") == {f"{built_in.key(built_in.words(TEXT), 'vi')}.wav",
                                      f"{province.key(province.words(TEXT), 'vi')}.wav"}
    assert "thị trấn Phú Thiện" in province.words(TEXT) and "trung tâm Phú Thiện" in built_in.words(TEXT)
    unaffected = "Bão số 3 giật cấp 15."
    assert built_in.key(built_in.words(unaffected), "vi") == province.key(province.words(unaffected), "vi")
    assert built_in.words("Call 114 at 7h30", "en") == "Call 114 at 7h30"


def test_the_daemons_speaker_reads_with_the_configs_lexicon_for_schedules_and_alerts(tmp_path):
    from agent import config
    from agent.daemon import build
    from agent.store import Store

    (tmp_path / "gia-lai.tsv").write_text("TT\tthị trấn\n", encoding="utf-8")
    path = tmp_path / "agent.yaml"
    path.write_text(f"device: {{id: GL-0001}}\nsecurity: {{require_signed: false}}\naudio: {{backend: null}}\n"
                    f"paths: {{state_dir: {tmp_path}/state, socket: {tmp_path}/agent.sock}}\n"
                    "tts: {lexicon: [gia-lai.tsv]}\n", encoding="utf-8")
    cfg = config.load(path)
    store = Store(cfg["paths"]["state_dir"])
    try:
        core = build(cfg, store)
        speaker = core.parts.player.speaker
        assert core.parts.alerts.speaker is speaker
        speaker.speak(TEXT)
        words = ("ủy ban nhân dân xã: cắt điện từ bảy giờ ba mươi phút đến mười bảy giờ ngày ba tháng mười hai tại "
                 "thị trấn Phú Thiện.")
        assert speaker.words(TEXT) == words
        assert wavs(tmp_path / "state/tts") == {f"{speaker.key(words, 'vi')}.wav"}
    finally:
        store.close()


def test_loa_say_dry_run_prints_the_words_with_the_provinces_lexicon_and_speaks_nothing(make_agent, tmp_path):
    """The technician sees what the box would say; no agent runs (nothing could speak), the config's lexicon
    applies."""
    lexicon = tmp_path / "gia-lai.tsv"
    lexicon.write_text("TT\tthị trấn\tabbr\n", encoding="utf-8")
    agent = make_agent(config={"tts": {"lexicon": [str(lexicon)]}})  # never started
    out = agent.cli("say", "--dry-run", TEXT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("ủy ban nhân dân xã: cắt điện từ bảy giờ ba mươi phút đến mười bảy giờ ngày ba "
                                  "tháng mười hai tại thị trấn Phú Thiện.")
    assert agent.cli("say", "--dry-run", "--lang", "en", "UBND 7h30").stdout.strip() == "UBND 7h30"
    assert not (agent.state_dir / "tts").exists()
