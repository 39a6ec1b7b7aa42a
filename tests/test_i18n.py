"""`loa` in Vietnamese and English: a complete catalogue, the order in which the language is chosen, the real CLI
against a real agent (status, doctor, a rejection, the agent not running), --json never translated, and the build
that puts the compiled catalogue into the wheel."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from support.layout import ROOT, build_wheel, clean_env

from agent import catalogs, i18n

PO = ROOT / "agent/locale/vi/LC_MESSAGES/loa.po"
PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[-+ #0]*\d*(?:\.\d+)?[sdrgfx%]")


def _catalog():
    with PO.open("rb") as f:
        return read_po(f)


def _placeholders(text: str) -> tuple[set[str], int]:
    """Named placeholders, and how many unnamed ones (%s, %r): those must stay in order, so their count must match."""
    found = [m for m in PLACEHOLDER.finditer(text) if m.group(0) != "%%"]
    return {m.group(1) for m in found if m.group(1)}, sum(1 for m in found if not m.group(1))


def test_every_message_has_a_vietnamese_translation_with_the_same_placeholders():
    problems = []
    for m in _catalog():
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if m.fuzzy or not all(strings):
            problems.append(f"untranslated or fuzzy: {m.context!r} {ids[0]!r}")
            continue
        names, unnamed = set(), 0
        for msgid in ids:
            n, u = _placeholders(msgid)
            names, unnamed = names | n, max(unnamed, u)
        for text in strings:
            if unicodedata.normalize("NFC", text) != text:
                problems.append(f"not NFC: {text!r}")
            n, u = _placeholders(text)
            if not n <= names or u != unnamed or (len(ids) == 1 and n != names):
                problems.append(f"placeholders differ: {ids[0]!r} -> {text!r}")
    assert not problems, "\n".join(problems)


def test_every_string_marked_in_the_code_and_argparse_is_in_the_catalogue():
    in_po = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in _catalog() if m.id}
    missing = [key for key in catalogs.extract() if key not in in_po]
    assert not missing, f"run `python -m agent.catalogs update` and translate: {missing}"


def test_vietnamese_plural_forms_and_header():
    cat = _catalog()
    assert cat.num_plurals == 1 and cat.plural_expr == "0" and str(cat.locale) == "vi"


# --- formatting -------------------------------------------------------------------------------------------------
@pytest.fixture
def lang(monkeypatch):
    def use(code: str) -> None:
        monkeypatch.setenv("LANGUAGE", code)  # what i18n.setup sets; monkeypatch restores it
        i18n.setup(code)
    yield use


def test_dates_sizes_and_durations_in_plain_words(lang):
    at = 1_764_549_000.0  # 2025-12-01 00:30 UTC: Monday 07:30 in Hà Nội
    lang("vi")
    assert i18n.when(at, "Asia/Ho_Chi_Minh") == "Thứ Hai, 01/12/2025 07:30"
    assert i18n.when("2026-12-05T17:05:00Z", "Asia/Ho_Chi_Minh") == "Chủ Nhật, 06/12/2026 00:05"
    assert i18n.size(1.5 * 2**20) == "1,5 MB" and i18n.number(1234567.75, 1) == "1.234.567,8"
    assert i18n.duration(2 * 3600 + 5 * 60 + 7) == "2 giờ 5 phút"
    assert i18n.duration(3 * 86400 + 4 * 3600) == "3 ngày 4 giờ"
    lang("en")
    assert i18n.when(at, "Asia/Ho_Chi_Minh") == "Mon 01 Dec 2025 07:30"
    assert i18n.size(1.5 * 2**20) == "1.5 MB" and i18n.duration(7507) == "2 h 5 min"


def test_a_msg_is_its_english_and_renders_in_the_readers_language(lang):
    from agent.errors import SchemaError
    from agent.schema import Int

    with pytest.raises(SchemaError) as e:
        Int(min=0, max=100).check(500, "params.volume")
    msg = e.value.msg
    assert msg == "params.volume: must be between 0 and 100, got 500" == str(e.value)
    assert json.dumps({"m": msg}) == '{"m": "params.volume: must be between 0 and 100, got 500"}'
    lang("vi")
    assert i18n.render(msg) == "params.volume: phải từ 0 đến 100, nhưng là 500"
    table = i18n.texts({"error": msg})  # over the local socket and back
    back = i18n.restore(json.loads(json.dumps({"error": msg})), json.loads(json.dumps(table)))
    assert i18n.render(back["error"]) == "params.volume: phải từ 0 đến 100, nhưng là 500"


# --- which language ---------------------------------------------------------------------------------------------
LOCALE_VARS = ("LOA_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def _config(tmp_path: Path, lang: str | None, valid: bool = True) -> Path:
    path = tmp_path / f"agent-{lang}-{valid}.yaml"
    text = "device: {id: GL-0001}\nsecurity: {require_signed: false}\n" + (f"cli: {{lang: {lang}}}\n" if lang else "")
    path.write_text(text + ("" if valid else "mqtt: {prot: 1883}\n"))
    return path


def _loa(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in clean_env().items() if k not in LOCALE_VARS}
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], env={**base, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("before", "after", "config_lang", "env", "expected"), [
    ((), ("--lang", "en"), "vi", {"LOA_LANG": "vi", "LANG": "vi_VN.UTF-8"}, "en"),  # --lang first
    (("--lang", "vi"), (), "en", {"LOA_LANG": "en"}, "vi"),  # ... before the subcommand too
    ((), (), "en", {"LOA_LANG": "vi", "LANG": "en_US.UTF-8"}, "vi"),  # then LOA_LANG
    ((), (), "vi", {"LANG": "en_US.UTF-8"}, "vi"),  # then cli.lang
    ((), (), "en", {"LANG": "vi_VN.UTF-8"}, "en"),
    ((), (), None, {"LANG": "vi_VN.UTF-8"}, "vi"),  # then the locale
    ((), (), None, {"LC_MESSAGES": "vi_VN.UTF-8", "LANG": "en_US.UTF-8"}, "vi"),
    ((), (), None, {"LC_ALL": "C.UTF-8", "LANG": "vi_VN.UTF-8"}, "en"),  # LC_ALL wins over LANG
    ((), (), None, {}, "en"),  # then English
], ids=["flag", "flag-before", "LOA_LANG", "cli.lang-vi", "cli.lang-en", "LANG", "LC_MESSAGES", "LC_ALL", "none"])
def test_the_language_is_chosen_in_order(tmp_path, before, after, config_lang, env, expected):
    path = _config(tmp_path, config_lang)
    out = _loa(*before, "config", "check", *after, "--config", str(path), **env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (f"{path}: hợp lệ" if expected == "vi" else f"{path}: OK")


def test_a_config_that_cannot_load_is_reported_in_the_language_of_the_other_sources(tmp_path):
    path = _config(tmp_path, "vi", valid=False)  # its cli.lang is not trusted: the file is invalid
    en = _loa("config", "check", "--config", str(path), LANG="en_US.UTF-8")
    said = "loa: error: config: mqtt.prot: unknown key (did you mean 'port'?)"
    assert en.returncode == 2 and en.stderr.strip() == said, en.stderr
    vi = _loa("config", "check", "--config", str(path), LANG="vi_VN.UTF-8")
    assert vi.stderr.strip() == "loa: lỗi: cấu hình: mqtt.prot: khóa không hợp lệ (có phải ý bạn là 'port'?)"


def test_argparse_speaks_the_chosen_language(tmp_path):
    out = _loa("--lang", "vi", "volume", "--config", str(_config(tmp_path, None)))
    assert out.returncode == 2
    assert out.stderr.startswith("cách dùng: loa volume") and "loa volume: lỗi: thiếu tham số bắt buộc: volume" in \
        out.stderr, out.stderr
    out = _loa("--lang", "vi", "amp", "maybe")
    assert "lỗi: tham số state: lựa chọn không hợp lệ: 'maybe' (chọn một trong: 'on', 'off')" in out.stderr
    helped = _loa("status", "--help", LOA_LANG="vi")
    assert "tùy chọn:" in helped.stdout and "hiện trợ giúp này rồi thoát" in helped.stdout
    assert "xuất JSON cho máy đọc (không dịch)" in helped.stdout


def test_say_keeps_its_own_lang_for_the_speech(tmp_path):
    """After `say`, --lang is the language spoken; loa's own language is chosen before the subcommand."""
    out = _loa("--lang", "vi", "say", "Hello", "--lang", "en", "--config", str(_config(tmp_path, None)))
    assert out.returncode == 3 and out.stderr.startswith("loa: agent không chạy"), out.stderr


# --- the real CLI and a real agent ----------------------------------------------------------------------------
def test_status_doctor_and_a_rejection_in_vietnamese_with_json_untranslated(agent):
    st = agent.cli("status", LOA_LANG="vi")
    assert st.returncode == 0, st.stderr
    lines = st.stdout.splitlines()
    assert re.fullmatch(r"loa-agent \S+ trên GL-0001: đã chạy \d+ giây \(lần khởi động [0-9a-f]{8}\)", lines[0]), \
        lines[0]
    rows = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert rows["máy chủ MQTT"].endswith("đã kết nối")
    assert rows["hàng đợi gửi (outbox)"].endswith("tin chờ gửi lên máy chủ MQTT")
    assert rows["âm thanh"].startswith("rảnh; 0 mục đang chờ; ampli main tắt")
    assert rows["sự cố"] == "không có" and "thẻ nhớ còn trống" in rows["hệ thống"]
    assert re.fullmatch(r"Thứ (Hai|Ba|Tư|Năm|Sáu|Bảy), \d\d/\d\d/20\d\d \d\d:\d\d|Chủ Nhật, .*|chưa gửi lần nào",
                        rows["heartbeat gần nhất"]), rows

    same = json.loads(agent.cli("status", "--json", LOA_LANG="vi").stdout)
    assert {"connected", "outbox_pending", "faults", "heartbeat"} <= same.keys() and same["audio"]["state"] == "idle"

    doc = agent.cli("doctor", LOA_LANG="vi")
    lines = doc.stdout.splitlines()
    verdict = {line.split()[0] for line in lines[:-1] if line and not line.startswith(" ")}
    assert verdict <= {"ĐẠT", "CẢNH", "LỖI", "BỎ"}, doc.stdout
    assert any(line.startswith("ĐẠT") and "cấu hình" in line and "hợp lệ" in line for line in lines), doc.stdout
    assert any("dịch vụ agent" in line and "đang chạy" in line and "sự cố: không có" in line for line in lines)
    assert re.fullmatch(r"\d+ đạt, \d+ cảnh báo, \d+ lỗi, \d+ bỏ qua", lines[-1]), lines[-1]
    doc_json = json.loads(agent.cli("doctor", "--json", LOA_LANG="vi").stdout)
    checks = {c["name"]: c for c in doc_json["checks"]}
    assert checks["audio"]["detail"] == "no audio (null backend)" and checks["config"]["detail"].endswith("is valid")

    bad = agent.cli("volume", "500", LOA_LANG="vi")
    assert bad.returncode == 2 and bad.stderr.strip() == "loa: lỗi: params.volume: phải từ 0 đến 100, nhưng là 500"
    zone = agent.cli("volume", "50", "--zone", "nowhere", LOA_LANG="vi")
    assert zone.stderr.strip() == "loa: lỗi: params.zones[0]: không có vùng 'nowhere' (các vùng: main)"
    board = agent.cli("display", "on", LOA_LANG="vi")
    assert board.stderr.strip() == "loa: lỗi: hộp này không có màn hình (khả năng: speaker)"


def test_the_mqtt_ack_stays_english(agent, province):
    jti = province.send("volume", {"volume": 500})
    assert province.ack(jti)["message"] == "params.volume: must be between 0 and 100, got 500"


def test_the_agent_not_running_in_vietnamese(make_agent):
    agent = make_agent()  # never started
    out = agent.cli("status", LOA_LANG="vi")
    sock = agent.config["paths"]["socket"]
    assert out.returncode == 3 and out.stderr.strip() == f"loa: agent không chạy (không có gì trả lời ở {sock})"
    doc = agent.cli("doctor", LOA_LANG="vi")
    assert any(re.match(r"CẢNH BÁO +dịch vụ agent +agent không chạy", line)
               for line in doc.stdout.splitlines()), doc.stdout


# --- the daemon and the build -----------------------------------------------------------------------------------
def test_the_daemon_opens_no_catalogue_and_imports_no_babel():
    probe = ("import sys, gettext, agent.daemon, agent.core, agent.local, agent.ipc, agent.selftest, agent.commands\n"
             "from agent.schema import Int\n"
             "try: Int(max=1).check(5, 'x')\n"
             "except Exception as e: assert str(e) == 'x: must be between -inf and 1, got 5'\n"
             "print(sorted(m for m in sys.modules if m.startswith('babel')), gettext._translations)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env(), cwd=ROOT)
    assert out.stdout.strip() == "[] {}", out.stdout + out.stderr


def test_the_wheel_carries_the_compiled_catalogue(tmp_path):
    wheel = build_wheel(tmp_path, "9.9.1", tmp_path / "wheels")
    with zipfile.ZipFile(wheel) as z:
        data = z.read("agent/locale/vi/LC_MESSAGES/loa.mo")
        assert not any(n.endswith(".po") for n in z.namelist())
    mo = tmp_path / "vi/LC_MESSAGES/loa.mo"
    mo.parent.mkdir(parents=True)
    mo.write_bytes(data)
    import gettext

    t = gettext.translation("loa", tmp_path, languages=["vi"])
    assert t.pgettext("weekday", "Mon") == "Thứ Hai" and t.gettext("usage: ") == "cách dùng: "
