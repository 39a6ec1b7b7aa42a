"""Display backends: png (frames to files; tests and screenshots), framebuffer (/dev/fbN), vlc (full screen
on HDMI), none. Scenes are rendered with Pillow (render.py) by the Screen worker (screen.py)."""
