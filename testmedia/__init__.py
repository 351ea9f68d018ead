"""Generated test media (ffmpeg, espeak-ng) shared by the tests and the benchmarks."""
