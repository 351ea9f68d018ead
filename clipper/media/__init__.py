"""Media operations on local files: probe, cut, thumbnail, render (ffmpeg), fetch (yt-dlp)."""
