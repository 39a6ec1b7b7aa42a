# Sourced by scripts/demo: the loudspeaker's part of the demo.
echo "== province: a chime, then a spoken bulletin (TTS, Vietnamese), then an emergency alert interrupts it"
loa-console send play --params '{"source": {"kind": "tone", "name": "chime"}, "title": "Chuông báo"}' --wait 15 >/dev/null
loa-console send play --wait 0 --params '{"source": {"kind": "tts", "lang": "vi", "text": "Thông báo của Ủy ban nhân dân xã: lịch tiêm chủng mở rộng sẽ diễn ra vào sáng thứ bảy tại trạm y tế xã. Đề nghị bà con đưa trẻ đến đúng giờ."}, "level": "normal", "title": "Bản tin y tế"}' >/dev/null
sleep 3
loa-console send alert --wait 40 --params '{"headline": "Bão số 5 sắp đổ bộ", "instruction": "Bà con khẩn trương di chuyển đến nơi tránh trú an toàn.", "repeat": 1}' >/dev/null
echo "== technician: loa status (the bulletin has resumed where the alert cut it)"
loa status --config "$demo/agent.yaml" || true
