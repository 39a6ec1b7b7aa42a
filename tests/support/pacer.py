"""Copy stdin to a file at the pace of a 48 kHz stereo S16 sound card (192000 B/s).

Used as the ALSA `file` plugin's pipe in tests and the demo. Unlike `pv -L`, it
gives no burst credit after an idle spell: a device never plays faster than
real time, so neither does the tap.
"""

import os
import sys
import time

RATE = 192000


def main() -> None:
    out = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    due = 0.0
    while data := os.read(0, 3840):  # 10 ms
        now = time.monotonic()
        due = max(due, now) + len(data) / RATE  # idle time is not credit
        os.write(out, data)
        if due - now > 0.02:
            time.sleep(due - now - 0.01)


if __name__ == "__main__":
    main()
