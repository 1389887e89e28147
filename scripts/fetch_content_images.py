"""Copy the colour photographs bundled with scikit-image into data/content/.

The photos ship inside the scikit-image wheel, so this needs no network access.
Their origins and licences are listed in data/README.md.

    python scripts/fetch_content_images.py [--out data/content]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from skimage import data

# file name in data/content -> skimage.data loader
PHOTOS = {
    "astronaut.jpg": data.astronaut,
    "chelsea_cat.jpg": data.chelsea,
    "coffee.jpg": data.coffee,
    "rocket.jpg": data.rocket,
    "hubble_deep_field.jpg": data.hubble_deep_field,
}


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=root / "data" / "content")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, loader in PHOTOS.items():
        pixels = loader()
        target = args.out / name
        # optimize=True only shrinks the Huffman tables; the pixels are the same as without it.
        Image.fromarray(pixels).convert("RGB").save(target, "JPEG", quality=92, optimize=True)
        print(
            f"{target}  {pixels.shape[1]}x{pixels.shape[0]}  {target.stat().st_size / 1024:.0f} KB"
        )


if __name__ == "__main__":
    main()
