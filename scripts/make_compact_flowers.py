"""Write a compact copy of Oxford Flowers 102 for a GPU machine that cannot reach the data (about 25 MB).

Each image is centre-cropped and resized to SIZE x SIZE exactly as training does, then stored as a JPEG
(quality 95) in the official layout, with the original imagelabels.mat and setid.mat, so that
`ddim train --data OUT` uses the seed's split unchanged (cropping and resizing become no-ops).

    python scripts/make_compact_flowers.py ../shared/data/flowers102 local/flowers64 [--size 64]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

from ddim.data.flowers import image_path, is_flowers_layout, read_index
from ddim.data.images import load_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a Flowers 102 folder in the official layout")
    parser.add_argument("target", type=Path, help="where to write the compact copy")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--quality", type=int, default=95)
    args = parser.parse_args()
    if not is_flowers_layout(args.source):
        parser.error(f"{args.source} is not in the official layout (jpg/, imagelabels.mat, setid.mat)")
    index = read_index(args.source)
    (args.target / "jpg").mkdir(parents=True, exist_ok=True)
    for name in ("imagelabels.mat", "setid.mat"):
        shutil.copyfile(args.source / name, args.target / name)
    for image_id in range(1, index.labels.size + 1):
        array = load_image(image_path(args.source, image_id), args.size)
        Image.fromarray(array).save(image_path(args.target, image_id), quality=args.quality)
    total = sum(p.stat().st_size for p in args.target.rglob("*") if p.is_file())
    print(f"wrote {index.labels.size} images of {args.size} px to {args.target} ({total / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
