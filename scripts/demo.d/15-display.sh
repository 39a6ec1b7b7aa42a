# Sourced by scripts/demo: the e-board's part. A playlist for the commune (area 64.23581) with two
# notices and a ticker; frames go to .demo/frames/frame.png; the alert that follows takes the screen.
start=$(TZ=Asia/Ho_Chi_Minh date +%Y-%m-%dT%H:%M:%S)
cat > "$demo/board.yaml" <<YAML
version: $(date +%s)
tz: Asia/Ho_Chi_Minh
items:
  - id: lich-tiem
    title: "Lịch tiêm chủng"
    start: "$start"
    duration_s: 8
    scene: {kind: text, title: "Lịch tiêm chủng sởi", body: "Thứ Bảy, 7 giờ 30, tại trạm y tế xã. Mang theo sổ tiêm chủng của trẻ."}
  - id: hop-dan
    title: "Họp dân"
    start: "$start"
    duration_s: 6
    scene: {kind: text, title: "Họp dân thôn 3", body: "19 giờ tối nay tại nhà văn hóa: bàn kế hoạch phòng chống lụt bão."}
  - id: tin-chay
    start: "$start"
    scene: {kind: ticker, text: "Không vớt củi, đánh bắt cá trên sông khi có lũ • Gọi 112 khi cần cứu nạn"}
YAML
echo "== province: the commune's e-board playlist (two notices and a ticker); frames in $demo/frames/frame.png"
loa-console schedule "$demo/board.yaml" --to area:64.23581 >/dev/null
sleep 2
loa display --config "$demo/agent.yaml" || true
loa display screenshot "$demo/screenshot.png" --config "$demo/agent.yaml" || true
