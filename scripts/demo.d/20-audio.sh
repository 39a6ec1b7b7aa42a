# Sourced by scripts/demo: the loudspeaker's part of the demo.
echo "== province: a chime, then a spoken bulletin (TTS, Vietnamese), then an emergency siren interrupts it"
loa-console send play --params '{"source": {"kind": "tone", "name": "chime"}, "title": "Chuông báo"}' --wait 15 >/dev/null
loa-console send play --wait 0 --params '{"source": {"kind": "tts", "lang": "vi", "text": "Thông báo của Ủy ban nhân dân xã: lịch tiêm chủng mở rộng sẽ diễn ra vào sáng thứ bảy tại trạm y tế xã. Đề nghị bà con đưa trẻ đến đúng giờ."}, "level": "normal", "title": "Bản tin y tế"}' >/dev/null
sleep 3
loa-console send play --wait 15 --params '{"source": {"kind": "tone", "name": "siren", "duration_s": 4}, "level": "emergency", "title": "Còi báo động"}' >/dev/null
echo "== technician: loa status (the bulletin has resumed where the siren cut it)"
loa status --config "$demo/agent.yaml" || true
