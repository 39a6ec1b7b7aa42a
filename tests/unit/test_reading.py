"""agent/audio/reading.py: what a news reader says for a bulletin's figures, times, dates, units, telephone
numbers and abbreviations; what it cannot read is kept; a province's lexicon laid over the built-in one
through `tts.lexicon` in a real config file; a CAP alert's text read by the same rules."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import config
from agent.alerts import from_cap
from agent.audio.reading import LexiconError, Reader, cardinal, load_lexicon, reader_for
from agent.errors import ConfigError

# Real bulletin sentences (storm, flood, heat, vaccination, meeting notices, power cuts, hotlines) and
# what is read aloud for each.
BULLETINS = [
    ('Bão số 3 cách đảo Bạch Long Vĩ 150km, sức gió mạnh cấp 12, giật cấp 15.',
     'Bão số ba cách đảo Bạch Long Vĩ một trăm năm mươi ki lô mét, sức gió mạnh cấp mười hai, giật cấp mười lăm.'),
    ('Hồi 13 giờ ngày 7/9, vị trí tâm bão ở khoảng 20,5 độ Vĩ Bắc; 108,2 độ Kinh Đông.',
     ('Hồi mười ba giờ ngày bảy tháng chín, vị trí tâm bão ở khoảng hai mươi phẩy năm độ Vĩ Bắc; một trăm linh tám '
      'phẩy hai độ Kinh Đông.')),
    ('Bão di chuyển theo hướng Tây Tây Bắc, tốc độ 15-20 km/h.',
     'Bão di chuyển theo hướng Tây Tây Bắc, tốc độ mười lăm đến hai mươi ki lô mét trên giờ.'),
    ('Vùng nguy hiểm trên Biển Đông trong 24 giờ tới: từ vĩ tuyến 17,5 đến 22,0.',
     ('Vùng nguy hiểm trên Biển Đông trong hai mươi bốn giờ tới: từ vĩ tuyến mười bảy phẩy năm đến hai mươi hai '
      'phẩy không.')),
    ('Từ đêm nay đến hết ngày 9/9 có mưa to đến rất to với lượng mưa 100-200mm, có nơi trên 300mm.',
     ('Từ đêm nay đến hết ngày chín tháng chín có mưa to đến rất to với lượng mưa một trăm đến hai trăm mi li mét, '
      'có nơi trên ba trăm mi li mét.')),
    ('Sóng biển cao 4-6m, biển động dữ dội.',
     'Sóng biển cao bốn đến sáu mét, biển động dữ dội.'),
    ('Mực nước sông Hồng tại Hà Nội lúc 7h ngày 10/9 là 10,5m, lưu lượng 6.000 m³/s.',
     ('Mực nước sông Hồng tại Hà Nội lúc bảy giờ ngày mười tháng chín là mười phẩy năm mét, lưu lượng sáu nghìn mét '
      'khối trên giây.')),
    ('Lưu lượng đến hồ Hòa Bình 12.500 m3/s, xả đáy 4 cửa.',
     'Lưu lượng đến hồ Hòa Bình mười hai nghìn năm trăm mét khối trên giây, xả đáy bốn cửa.'),
    ('Mực nước sông Cầu tại Đáp Cầu lúc 19h ngày 11/9 là 6,86m, trên báo động 3 là 0,56m.',
     ('Mực nước sông Cầu tại Đáp Cầu lúc mười chín giờ ngày mười một tháng chín là sáu phẩy tám mươi sáu mét, trên '
      'báo động ba là không phẩy năm mươi sáu mét.')),
    ('Nguy cơ lũ quét, sạt lở đất tại 25 xã của huyện.',
     'Nguy cơ lũ quét, sạt lở đất tại hai mươi lăm xã của huyện.'),
    ('Nhiệt độ cao nhất 35-37°C, có nơi trên 38°C.',
     'Nhiệt độ cao nhất ba mươi lăm đến ba mươi bảy độ xê, có nơi trên ba mươi tám độ xê.'),
    ('Nhiệt độ thấp nhất ở vùng núi cao -2°C, có nơi có băng giá.',
     'Nhiệt độ thấp nhất ở vùng núi cao âm hai độ xê, có nơi có băng giá.'),
    ('Độ ẩm thấp nhất 45-50%.',
     'Độ ẩm thấp nhất bốn mươi lăm đến năm mươi phần trăm.'),
    ('Ngày 05/12/2026, Trạm Y tế xã tổ chức tiêm vắc xin sởi cho trẻ từ 9 tháng tuổi.',
     ('Ngày năm tháng mười hai năm hai nghìn không trăm hai mươi sáu, Trạm y tế xã tổ chức tiêm vắc xin sởi cho trẻ '
      'từ chín tháng tuổi.')),
    ('Tiêm vắc xin COVID-19 mũi 3 cho người từ 18 tuổi trở lên.',
     'Tiêm vắc xin cô vít mười chín mũi ba cho người từ mười tám tuổi trở lên.'),
    ('Thời gian tiêm từ 7h30 đến 11h00 và từ 13h30 đến 16h30 các ngày thứ 2, thứ 4, thứ 6.',
     ('Thời gian tiêm từ bảy giờ ba mươi phút đến mười một giờ và từ mười ba giờ ba mươi phút đến mười sáu giờ ba '
      'mươi phút các ngày thứ hai, thứ tư, thứ sáu.')),
    ('Đề nghị các gia đình mang theo sổ tiêm chủng và thẻ BHYT.',
     'Đề nghị các gia đình mang theo sổ tiêm chủng và thẻ bảo hiểm y tế.'),
    ('Tỷ lệ tiêm chủng đầy đủ đạt 98,5%.',
     'Tỷ lệ tiêm chủng đầy đủ đạt chín mươi tám phẩy năm phần trăm.'),
    ('UBND xã An Phú họp lúc 14h00 ngày 05/12/2026 tại hội trường.',
     ('ủy ban nhân dân xã An Phú họp lúc mười bốn giờ ngày năm tháng mười hai năm hai nghìn không trăm hai mươi sáu '
      'tại hội trường.')),
    ('HĐND huyện khóa XX tổ chức kỳ họp thứ 12 vào ngày 20/12.',
     'hội đồng nhân dân huyện khóa hai mươi tổ chức kỳ họp thứ mười hai vào ngày hai mươi tháng mười hai.'),
    ('BCH PCTT xã yêu cầu các thôn kiểm tra đê điều.',
     'ban chỉ huy phòng chống thiên tai xã yêu cầu các thôn kiểm tra đê điều.'),
    ('Cắt điện từ 7h30 đến 17h00 ngày 3/12 khu vực thôn 2, tổ 5.',
     'Cắt điện từ bảy giờ ba mươi phút đến mười bảy giờ ngày ba tháng mười hai khu vực thôn hai, tổ năm.'),
    ('Điện lực huyện thông báo tạm ngừng cung cấp điện đường dây 22kV từ 8:00 đến 16:30 ngày 15/1/2027.',
     ('Điện lực huyện thông báo tạm ngừng cung cấp điện đường dây hai mươi hai ki lô vôn từ tám giờ đến mười sáu '
      'giờ ba mươi phút ngày mười lăm tháng một năm hai nghìn không trăm hai mươi bảy.')),
    ('Mọi thắc mắc xin liên hệ 0912 345 678.',
     'Mọi thắc mắc xin liên hệ không chín một hai, ba bốn năm, sáu bảy tám.'),
    ('Đường dây nóng: 1900 1234.',
     'Đường dây nóng: một chín không không, một hai ba bốn.'),
    ('Khi có cháy, gọi ngay 114.',
     'Khi có cháy, gọi ngay một một bốn.'),
    ('Gọi 113, 114 hoặc 115 khi cần.',
     'Gọi một một ba, một một bốn hoặc một một năm khi cần.'),
    ('Số điện thoại trực ban: 0203.3825.123.',
     'Số điện thoại trực ban: không hai không ba, ba tám hai năm, một hai ba.'),
    ('Hỗ trợ 1.250.000 đồng mỗi hộ.',
     'Hỗ trợ một triệu hai trăm năm mươi nghìn đồng mỗi hộ.'),
    ('Quãng đường 3,5 km.',
     'Quãng đường ba phẩy năm ki lô mét.'),
    ('Tổng kinh phí 2,5 tỷ đồng.',
     'Tổng kinh phí hai phẩy năm tỷ đồng.'),
    ('Năm 2026, xã có 105 hộ nghèo, giảm 21 hộ so với năm 2025.',
     ('Năm hai nghìn không trăm hai mươi sáu, xã có một trăm linh năm hộ nghèo, giảm hai mươi mốt hộ so với năm hai '
      'nghìn không trăm hai mươi lăm.')),
    ('Dân số toàn xã là 10.015 người.',
     'Dân số toàn xã là mười nghìn không trăm mười lăm người.'),
    ('Diện tích lúa bị ngập là 1.000 ha.',
     'Diện tích lúa bị ngập là một nghìn héc ta.'),
    ('Giá thóc 7.500đ/kg.',
     'Giá thóc bảy nghìn năm trăm đồng trên ki lô gam.'),
    ('CSGT huyện tăng cường tuần tra trên QL1A.',
     'cảnh sát giao thông huyện tăng cường tuần tra trên quốc lộ một a.'),
    ('Đội PCCC cơ sở trực 24/24.',
     'Đội phòng cháy chữa cháy cơ sở trực hai mươi bốn trên hai mươi bốn.'),
    ('Học sinh THCS nghỉ học ngày 10/9.',
     'Học sinh trung học cơ sở nghỉ học ngày mười tháng chín.'),
    ('Cán bộ TT. Phong Điền và TP. Huế.',
     'Cán bộ thị trấn Phong Điền và thành phố Huế.'),
    ('Địa chỉ: số 12, P. Bến Nghé, Q.1, TP.HCM.',
     'Địa chỉ: số mười hai, phường Bến Nghé, quận một, thành phố Hồ Chí Minh.'),
    ('Hội nghị diễn ra vào sáng thứ 7, ngày 1/12.',
     'Hội nghị diễn ra vào sáng thứ bảy, ngày một tháng mười hai.'),
    ('Kế hoạch năm 2026 và nhiệm kỳ 2025-2030.',
     ('Kế hoạch năm hai nghìn không trăm hai mươi sáu và nhiệm kỳ hai nghìn không trăm hai mươi lăm đến hai nghìn '
      'không trăm ba mươi.')),
    ('Quý IV năm 2026.',
     'Quý bốn năm hai nghìn không trăm hai mươi sáu.'),
    ('Đại hội Đảng bộ xã lần thứ XXV.',
     'Đại hội Đảng bộ xã lần thứ hai mươi lăm.'),
    ('Tháng 4/2026 sẽ có đợt nắng nóng.',
     'Tháng tư năm hai nghìn không trăm hai mươi sáu sẽ có đợt nắng nóng.'),
    ('BÃO SỐ 3 ĐANG TIẾN VÀO ĐẤT LIỀN.',
     'bão số ba đang tiến vào đất liền.'),
    ('Ubnd xã thông báo.',
     'ủy ban nhân dân xã thông báo.'),
    ('Xem trên VTV1 lúc 19h.',
     'Xem trên vê tê vê một lúc mười chín giờ.'),
    ('Đây là tin từ KTTV tỉnh.',
     'Đây là tin từ khí tượng thủy văn tỉnh.'),
    ('Dịch cúm gia cầm H5N1 xuất hiện tại thôn 3.',
     'Dịch cúm gia cầm hát năm nờ một xuất hiện tại thôn ba.'),
    ('Cây số Km 15 đường tỉnh.',
     'Cây số ki lô mét mười lăm đường tỉnh.'),
    ('Trận động đất mạnh 4,5 độ.',
     'Trận động đất mạnh bốn phẩy năm độ.'),
    ('Từ 7-9 giờ sáng mai.',
     'Từ bảy đến chín giờ sáng mai.'),
    ('Từ 7h-9h sáng mai.',
     'Từ bảy giờ đến chín giờ sáng mai.'),
    ('Mưa kéo dài từ ngày 10-12/9.',
     'Mưa kéo dài từ ngày mười đến mười hai tháng chín.'),
    ('Thời gian 07:05:30.',
     'Thời gian bảy giờ năm phút ba mươi giây.'),
    ('Khoảng 0,05 ha bị ảnh hưởng.',
     'Khoảng không phẩy không năm héc ta bị ảnh hưởng.'),
    ('Đợt rét đậm từ ngày 1/1 đến 5/1/2027.',
     'Đợt rét đậm từ ngày một tháng một đến ngày năm tháng một năm hai nghìn không trăm hai mươi bảy.'),
    ('Trẻ em dưới 6 tuổi được cấp thẻ BHYT miễn phí.',
     'Trẻ em dưới sáu tuổi được cấp thẻ bảo hiểm y tế miễn phí.'),
    ('Xã có 1.000.050 đồng tiền quỹ.',
     'Xã có một triệu không trăm năm mươi đồng tiền quỹ.'),
    ('Trực 24/7, hotline 0912345678.',
     'Trực hai mươi bốn trên bảy, hotline không chín một hai, ba bốn năm, sáu bảy tám.'),
    ('Liên hệ ĐT: (024) 3825 1234.',
     'Liên hệ điện thoại: không hai bốn, ba tám hai năm, một hai ba bốn.'),
    ('Vào lúc 07:05 sáng thứ 4.',
     'Vào lúc bảy giờ năm phút sáng thứ tư.'),
    ('Giá 25.000 VNĐ/kg.',
     'Giá hai mươi lăm nghìn đồng trên ki lô gam.'),
    ('Hạt mưa 1,250,000 giọt.',
     'Hạt mưa một triệu hai trăm năm mươi nghìn giọt.'),
    ('Sóng cao 2 - 3 m.',
     'Sóng cao hai đến ba mét.'),
    ('Đường dây nóng của tỉnh: +84 912 345 678.',
     'Đường dây nóng của tỉnh: cộng tám bốn, chín một hai, ba bốn năm, sáu bảy tám.'),
    ('Tin khẩn!!! Bão…',
     'Tin khẩn! Bão...'),
    ('Chương III, Điều 5.',
     'Chương ba, Điều năm.'),
    ('Cấp 10-11.',
     'Cấp mười đến mười một.'),
]


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


@pytest.mark.parametrize(("text", "spoken"), BULLETINS, ids=[t[:40] for t, _ in BULLETINS])
def test_a_bulletin_is_read_as_a_news_reader_would(reader, text, spoken):
    assert reader.read(text) == spoken


@pytest.mark.parametrize(("n", "words"), [
    (0, "không"), (10, "mười"), (15, "mười lăm"), (21, "hai mươi mốt"), (25, "hai mươi lăm"),
    (105, "một trăm linh năm"), (110, "một trăm mười"), (1005, "một nghìn không trăm linh năm"),
    (2026, "hai nghìn không trăm hai mươi sáu"), (1_250_000, "một triệu hai trăm năm mươi nghìn"),
    (10**9, "một tỷ"), (5 * 10**12, "năm nghìn tỷ"), (1_000_000_005, "một tỷ không trăm linh năm"),
])
def test_cardinals(n, words):
    assert cardinal(n) == words


def test_nfd_input_and_capitals_read_as_nfc(reader):
    text = "BÃO SỐ 3 đổ bộ vào Quảng Ngãi lúc 19h, UBND tỉnh họp khẩn."
    spoken = "bão số ba đổ bộ vào Quảng Ngãi lúc mười chín giờ, ủy ban nhân dân tỉnh họp khẩn."
    assert reader.read(unicodedata.normalize("NFD", text)) == spoken
    assert unicodedata.is_normalized("NFC", reader.read(unicodedata.normalize("NFD", text)))


def test_what_it_cannot_read_is_kept_never_dropped(reader):
    # An unknown all-caps abbreviation is spelled with the lexicon's letter names; other words stay as written.
    assert reader.read("Kênh VTV và XYZ đưa tin") == "Kênh vê tê vê và ích i dét đưa tin"
    assert reader.read("Gửi email tới iPhone của ông Smith ✉ #1") == "Gửi email tới iPhone của ông Smith ✉ # một"
    text = "Lorem ipsum ÆØÅ 😀 §"
    assert reader.read(text) == "Lorem ipsum æ ø å 😀 §"
    for word in ("Lorem", "ipsum", "😀", "§"):
        assert word in reader.read(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("0123456789 .,:/-%°Chkm³+()ĐđUBNDTPQxã\n!…") +
                                ["thứ ", "ngày ", "gọi ", "quý ", "km/h", "VTV", "IV", "24/7"])).map("".join))
def test_any_text_is_read_without_error(reader, text):
    reader.read(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["bão", "lũ", "xã", "thôn", "họp", "người", "dân", "ca", "trực", "Điện", "ha",
                                 "tổ", "giờ", "thứ", "ngày", "tháng"]), min_size=1).map(" ".join))
def test_plain_words_are_kept_as_they_are(reader, text):
    assert reader.read(text) == text


def test_a_province_lexicon_extends_and_overrides_the_built_in_one_through_the_config(tmp_path):
    (tmp_path / "gia-lai.tsv").write_text(
        "# Gia Lai's own words\nTT\tthị trấn\nBQLDA\tban quản lý dự án\nG\tgờ\tletter\nsào\tsào\tabbr\n"
        "đ/ng\tđồng một người\tunit\n", encoding="utf-8")
    (tmp_path / "xa.yaml").write_text("abbr:\n  NO: nông thôn mới\nunit:\n  sào Bắc Bộ: sào bắc bộ\n",
                                      encoding="utf-8")
    path = tmp_path / "agent.yaml"
    path.write_text("device: {id: GL-0001}\nsecurity: {require_signed: false}\n"
                    "tts:\n  lexicon: [gia-lai.tsv, xa.yaml]\n", encoding="utf-8")
    cfg = config.load(path)
    assert cfg["tts"]["lexicon"] == [str(tmp_path / "gia-lai.tsv"), str(tmp_path / "xa.yaml")]
    province = reader_for(cfg)
    assert province.read("TT Phú Thiện, BQLDA huyện, xã đạt chuẩn NO") == \
        "thị trấn Phú Thiện, ban quản lý dự án huyện, xã đạt chuẩn nông thôn mới"
    assert province.read("Trợ cấp 50.000đ/ng, mã GPS") == "Trợ cấp năm mươi nghìn đồng một người, mã gờ pê ét"
    assert Reader().read("TT Y tế, mã GPS") == "trung tâm y tế, mã giê pê ét"  # the built-in reading
    assert reader_for(cfg) is province  # once per process while the files are unchanged
    (tmp_path / "gia-lai.tsv").write_text("TT\tthị tứ\n", encoding="utf-8")
    assert reader_for(cfg).read("TT Phú Thiện") == "thị tứ Phú Thiện"  # an edited file is read again


@pytest.mark.parametrize(("name", "body", "line", "what"), [
    ("bad.tsv", "UBND\tủy ban\n# fine\nPCCC phòng cháy\n", 3, "tab-separated"),
    ("bad.tsv", "TT\tthị trấn\tplace\n", 1, "unknown kind 'place'"),
    ("bad.tsv", "114\tcứu hỏa\n", 1, "has no letter"),
    ("bad.yaml", "UBND: ủy ban\nPCCC: [phòng, cháy]\n", 2, "KEY: READING"),
    ("bad.yaml", "UBND: ủy ban\n  PCCC: x: y\n", 2, "not valid YAML"),
])
def test_a_bad_lexicon_is_a_config_error_naming_the_file_and_line(tmp_path, name, body, line, what):
    (tmp_path / name).write_text(body, encoding="utf-8")
    with pytest.raises(LexiconError, match=what) as e:
        load_lexicon(tmp_path / name)
    assert f"{tmp_path / name}:{line}:" in str(e.value)
    path = tmp_path / "agent.yaml"
    path.write_text(f"device: {{id: GL-0001}}\nsecurity: {{require_signed: false}}\ntts: {{lexicon: [{name}, "
                    "missing.tsv]}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert f"tts.lexicon[0]: {tmp_path / name}:{line}: " in "\n".join(e.value.problems)
    assert f"tts.lexicon[1]: {tmp_path / 'missing.tsv'}: cannot read" in "\n".join(e.value.problems)


def test_the_built_in_lexicon_ships_in_the_package_and_parses():
    from agent.audio import reading

    setup = (Path(__file__).resolve().parents[2] / "setup.py").read_text()
    assert '"agent.audio": ["lexicon_vi.tsv"]' in setup
    assert {e.kind for e in load_lexicon(reading.BUILTIN)} == {"abbr", "unit", "letter", "symbol"}


CAP = """<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>GL-2026-0042</identifier><sender>pctt@gialai.gov.vn</sender><sent>2026-09-07T06:00:00+07:00</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>vi-VN</language><category>Met</category><event>Bão</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty>
    <headline>BCH PCTT tỉnh: Bão số 3 giật cấp 15</headline>
    <description>Lúc 7h30 ngày 7/9, tâm bão cách đảo Lý Sơn 150km.</description>
    <instruction>UBND các xã sơ tán dân trước 17h00; gọi 114 khi cần.</instruction>
  </info>
</alert>"""


def test_a_cap_alerts_text_is_read_by_the_same_rules(reader):
    alert = from_cap(CAP, areas=[], location=None)
    assert reader.read(alert.speech()) == (
        "ban chỉ huy phòng chống thiên tai tỉnh: Bão số ba giật cấp mười lăm "
        "Lúc bảy giờ ba mươi phút ngày bảy tháng chín, tâm bão cách đảo Lý Sơn một trăm năm mươi ki lô mét. "
        "ủy ban nhân dân các xã sơ tán dân trước mười bảy giờ; gọi một một bốn khi cần.")
