# Sourced by scripts/demo: a daily programme, signed and retained, whose first occurrence is due in 20 s.
start=$(TZ=Asia/Ho_Chi_Minh date -d "+20 seconds" +%Y-%m-%dT%H:%M:%S)
cat > "$demo/schedule.yaml" <<YAML
version: $(date +%s)
tz: Asia/Ho_Chi_Minh
items:
  - id: ban-tin-sang
    title: "Bản tin thời sự xã"
    start: "$start"
    rrule: FREQ=DAILY
    level: normal
    source: {kind: tts, lang: vi, text: "Đây là đài truyền thanh xã Ia Kênh. Sau đây là bản tin thời sự."}
YAML
echo "== province: a daily schedule whose first programme is due at $start (Asia/Ho_Chi_Minh)"
loa-console schedule "$demo/schedule.yaml" --to dev:GL-DEMO >/dev/null
sleep 1
loa schedule --config "$demo/agent.yaml" --hours 48 || true
