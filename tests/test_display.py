"""The e-board: Vietnamese text read back by Tesseract, letterboxed images, video through VLC, the
playlist's turns on an injected clock, alert takeover, power, screenshots over MQTT, framebuffer bytes."""

from __future__ import annotations

import base64
import io
import subprocess
import threading
import unicodedata
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from support.agentproc import eventually
from support.frames import dominant, is_red
from support.incore import InCore

from agent.media import MediaCache
from drivers.display import render
from drivers.display.framebuffer import Backend as Framebuffer
from drivers.display.video import Video

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MONDAY_6 = datetime(2026, 11, 23, 6, 0, tzinfo=TZ).timestamp()
TITLE = "Thông báo của Ủy ban nhân dân xã"
BODY = ("Từ ngày mười lăm, trạm y tế tổ chức tiêm chủng sởi cho trẻ em. Người dân ở vùng trũng thấp "
        "chuẩn bị di chuyển đến nơi tránh trú an toàn khi có lũ.")


def words(text: str) -> list[str]:
    return [w.strip(".,:;") for w in unicodedata.normalize("NFC", text).split() if w.strip(".,:;")]


def png_file(path: Path, size: tuple[int, int], color: tuple[int, int, int], exif_orientation: int = 0) -> Path:
    im = Image.new("RGB", size, color)
    exif = Image.Exif()
    if exif_orientation:
        exif[0x0112] = exif_orientation
    im.save(path, format="JPEG" if path.suffix == ".jpg" else "PNG", exif=exif)
    return path


# --- rendering -------------------------------------------------------------------------------------
def test_vietnamese_text_scene_reads_back_with_every_diacritic(tmp_path):
    frame = render.scene({"kind": "text", "title": TITLE, "body": BODY}, render.Style(name="Xã Tân Lập"),
                         (1280, 720), datetime(2026, 11, 23, 6, 0, tzinfo=TZ))
    frame.save(tmp_path / "text.png")
    ocr = subprocess.run(["tesseract", str(tmp_path / "text.png"), "-", "-l", "vie"], capture_output=True,
                         text=True, check=True).stdout
    seen = set(words(ocr))
    expected = words(TITLE) + words(BODY) + ["Tân", "Lập", "Thứ", "Hai"]
    missing = [w for w in expected if w not in seen]
    assert not missing, f"OCR did not find {missing} in:\n{ocr}"


def test_image_is_letterboxed_and_turned_upright(tmp_path):
    style = render.Style(header=False)
    wide = png_file(tmp_path / "wide.png", (400, 100), (255, 0, 0))
    frame = render.scene({"kind": "image"}, style, (1000, 800), datetime.now(TZ), wide)
    # 400×100 fills the width: 1000×250, centred; black bands above and below
    assert frame.getpixel((500, 0)) == (0, 0, 0) and frame.getpixel((500, 274)) == (0, 0, 0)
    assert frame.getpixel((500, 276)) == (255, 0, 0) and frame.getpixel((0, 400)) == (255, 0, 0)
    assert frame.getpixel((999, 523)) == (255, 0, 0) and frame.getpixel((500, 526)) == (0, 0, 0)
    # a phone photo stored sideways (EXIF orientation 6): shown upright, so tall, with side bands
    sideways = png_file(tmp_path / "photo.jpg", (400, 100), (0, 0, 255), exif_orientation=6)
    frame = render.scene({"kind": "image"}, style, (1000, 800), datetime.now(TZ), sideways)
    assert frame.getpixel((500, 0))[2] > 200 and frame.getpixel((500, 799))[2] > 200  # full height
    assert frame.getpixel((0, 400)) == (0, 0, 0) and frame.getpixel((999, 400)) == (0, 0, 0)  # pillarboxed
    assert frame.getpixel((399, 400)) == (0, 0, 0) and frame.getpixel((601, 400)) == (0, 0, 0)  # 200 px wide


def test_a_video_plays_through_vlc_with_a_dummy_output(tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "1.5",
                    "-c:v", "mpeg4", str(clip)], check=True)
    video = Video(["--vout=dummy"])
    ended = threading.Event()
    errors: list[str | None] = []
    video.play(clip, lambda e: (errors.append(e), ended.set()))
    seen_playing = eventually(lambda: (video.state() or {}).get("state") == "Playing", what="VLC playing")
    assert seen_playing
    assert ended.wait(20), "the video never ended"
    assert errors == [None]
    video.close()


# --- the framebuffer backend -------------------------------------------------------------------------
@pytest.mark.parametrize("bpp, red, white", [(16, b"\x00\xf8", b"\xff\xff"), (32, b"\x00\x00\xff\x00",
                                                                             b"\xff\xff\xff\x00")])
def test_framebuffer_writes_the_panels_pixel_format(tmp_path, bpp, red, white):
    w, h, pad = 8, 4, 16  # lines padded to a stride longer than the pixels, as some drivers do
    stride = w * bpp // 8 + pad
    sysfs = tmp_path / "fb0"
    sysfs.mkdir()
    (sysfs / "bits_per_pixel").write_text(f"{bpp}\n")
    (sysfs / "virtual_size").write_text(f"{w},{h}\n")
    (sysfs / "stride").write_text(f"{stride}\n")
    dev = tmp_path / "fb0.dev"
    dev.write_bytes(b"\xaa" * stride * h)
    fb = Framebuffer({"fb_device": str(dev), "fb_sysfs": str(sysfs), "power_method": "none"})
    fb.start()
    frame = Image.new("RGB", (w, h), (255, 0, 0))
    frame.putpixel((w - 1, h - 1), (255, 255, 255))
    fb.show(frame)
    data = dev.read_bytes()
    px = bpp // 8
    assert data[:px] == red and data[(h - 1) * stride + (w - 1) * px:(h - 1) * stride + w * px] == white
    assert data[w * px:stride] == b"\xaa" * pad  # the padding is left alone
    frame.paste((0, 0, 255), (0, 2, w, 4))  # a ticker band: only rows 2-3 are rewritten
    dev.write_bytes(b"\x00" * stride * h)
    fb.show(frame, rows=(2, 4))
    data = dev.read_bytes()
    assert data[:2 * stride] == b"\x00" * 2 * stride
    blue = b"\x1f\x00" if bpp == 16 else b"\xff\x00\x00\x00"
    assert data[2 * stride:2 * stride + px] == blue
    fb.close()


# --- the board on an injected clock --------------------------------------------------------------------
def board_settings(tmp_path: Path, **display: object) -> dict:
    return {"device": {"id": "GL-0001", "areas": ["64"], "capabilities": ["speaker", "display"],
                       "name": "Xã Tân Lập"},
            "display": {"backend": "png", "png_dir": str(tmp_path / "frames"), "width": 640, "height": 360,
                        **display}}


def slide(id_: str, duration: float, scene: dict | None = None) -> dict:
    return {"id": id_, "start": "2026-11-23T05:00:00", "duration_s": duration,
            "scene": scene or {"kind": "text", "title": id_.upper(), "body": f"Nội dung {id_}"}}


def test_three_slides_loop_in_order_and_a_missing_image_is_skipped(tmp_path, keys):
    missing = {"kind": "image", "url": "http://127.0.0.1:9/none.png", "sha256": "0" * 64}
    with InCore(tmp_path, keys, board_settings(tmp_path), start=MONDAY_6) as box:
        box.schedule(1, [slide("a", 0.6), slide("b", 1.2), slide("gone", 0.5, missing), slide("c", 0.4)])
        eventually(lambda: len(box.events("display.shown")) >= 7, timeout=30, what="two loops")
        shown = box.events("display.shown")[:7]
        assert [e["id"] for e in shown] == ["a", "b", "c", "a", "b", "c", "a"]
        for e in shown:
            assert e["origin"] == "schedule" and e["completed"] and e["reason"] == "finished"
            assert abs(e["seconds"] - {"a": 0.6, "b": 1.2, "c": 0.4}[e["id"]]) < 0.25, e
        for prev, nxt in zip(shown, shown[1:], strict=False):
            assert abs(nxt["started"] - prev["ended"]) < 0.3  # back to back
        skipped = box.events("display.skipped")
        assert [(s["id"], s["reason"]) for s in skipped] == [("gone", "media_unavailable")]  # once, not per loop
        assert (tmp_path / "frames/frame.png").exists()


def test_an_alert_takes_the_screen_and_the_playlist_resumes(tmp_path, keys):
    with InCore(tmp_path, keys, board_settings(tmp_path), start=MONDAY_6) as box:
        box.schedule(1, [slide("a", 30.0), slide("b", 30.0)])
        frame = tmp_path / "frames/frame.png"
        eventually(lambda: box.call(lambda: box.core.parts.board.current.started is not None), what="slide a up")
        assert not is_red(dominant(frame))
        jti = box.send("alert", {"headline": "Lũ quét tại xã Tân Lập", "instruction": "Sơ tán ngay lên đồi cao",
                                 "siren": False, "repeat": 20})
        eventually(lambda: is_red(dominant(frame)), what="the alert layout (red) on the panel")
        assert box.call(lambda: box.core.heartbeat(advance=False)["display"]["showing"]["origin"]) == "alert"
        box.send("alert.cancel", {"id": jti})
        eventually(lambda: not is_red(dominant(frame)), what="the playlist back")
        eventually(lambda: [e["id"] for e in box.events("display.shown")] == ["a", jti], what="proof of display")
        a, alert = box.events("display.shown")
        assert a["reason"] == "preempted" and not a["completed"]
        assert alert["origin"] == "alert" and alert["kind"] == "alert"
        assert box.call(lambda: box.core.parts.board.current.id) == "a"  # where it was, not the next slide


def test_show_clear_power_and_the_power_schedule(tmp_path, keys):
    before_off = datetime(2026, 11, 23, 21, 59, 59, tzinfo=TZ).timestamp()
    settings = board_settings(tmp_path, power_schedule={"on": "05:30", "off": "22:00"})
    with InCore(tmp_path, keys, settings, start=before_off) as box:
        jti = box.send("display.show", {"scene": {"kind": "text", "title": "Họp dân", "body": "19 giờ tối nay"},
                                        "level": "priority"})
        eventually(lambda: [a["status"] for a in box.acks(jti)] == ["accepted", "done"], what="show acked")
        assert box.acks(jti)[-1]["result"]["on_screen"] is True
        power = tmp_path / "frames/power.jsonl"
        eventually(lambda: power.exists() and '"on": false' in power.read_text(), timeout=10,
                   what="the panel off at 22:00")
        assert box.call(lambda: box.core.parts.board.on) is False
        on = box.send("display.power", {"on": True})
        eventually(lambda: box.acks(on) and box.acks(on)[-1]["status"] == "done", what="power on acked")
        assert box.acks(on)[-1]["result"] == {"on": True, "method": "sim"}
        eventually(lambda: box.call(lambda: box.core.parts.board.current is not None
                                    and box.core.parts.board.current.id == jti), what="the show back on screen")
        cleared = box.send("display.clear")
        eventually(lambda: box.acks(cleared), what="clear acked")
        assert box.acks(cleared)[-1]["result"] == {"cleared": 1}
        assert box.call(lambda: box.core.parts.board.current.origin) == "idle"


# --- over MQTT, the real agent ----------------------------------------------------------------------------
def test_screenshot_over_mqtt_is_a_png_of_the_current_frame(make_agent, province, tmp_path):
    frames = tmp_path / "frames"
    agent = make_agent(config={"device": {"capabilities": ["display"], "name": "Xã Tân Lập"},
                               "audio": {"backend": "null"},
                               "display": {"backend": "png", "png_dir": str(frames), "width": 800, "height": 450}})
    mark = province.mark()
    agent.start()
    province.status("online", after=mark)
    image = png_file(tmp_path / "notice.png", (300, 300), (0, 160, 0))
    digest = MediaCache(agent.state_dir / "cache").add_file(image)
    shown = province.send("display.show", {"scene": {"kind": "image", "url": image.as_uri(), "sha256": digest}})
    assert province.done(shown)["result"]["on_screen"] is True
    jti = province.send("display.screenshot")
    ack = province.done(jti)
    png = base64.b64decode(ack["result"]["png_b64"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (800, 450) == (ack["result"]["width"], ack["result"]["height"])
        assert im.convert("RGB").getpixel((400, 225)) == (0, 160, 0)  # the image, centred
        assert im.convert("RGB").getpixel((5, 225)) == (0, 0, 0)  # its letterbox
    hb = province.done(province.send("status.get"))["result"]
    assert hb["display"]["on"] is True and hb["display"]["showing"]["id"] == shown
    assert hb["capabilities"] == ["display"]
    # the technician on the ladder gets the same frame through the local socket
    shot = tmp_path / "shot.png"
    r = agent.cli("display", "screenshot", str(shot))
    assert r.returncode == 0, r.stderr
    with Image.open(shot) as im:
        assert im.size == (800, 450) and im.convert("RGB").getpixel((400, 225)) == (0, 160, 0)
    r = agent.cli("display")
    assert r.returncode == 0 and "panel: on (png)" in r.stdout and "showing: command image" in r.stdout, r.stdout


def test_a_box_without_a_display_says_so(agent, province):
    jti = province.send("display.show", {"scene": {"kind": "text", "title": "x"}})
    ack = province.ack(jti)
    assert ack["status"] == "rejected" and ack["code"] == "not_for_me" and "no display" in ack["message"]
