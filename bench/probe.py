"""Fresh-process measurements for the benchmark: ``python -m bench.probe cold|memory SIZE``.

Run in a new process so that import time, model build and peak RSS are not hidden by what the
benchmark process already loaded.
"""

import resource
import sys
import time

start = time.perf_counter()
from stransfer import TransferSettings, load_extractor, load_image, transfer  # noqa: E402

ROOT = __file__.rsplit("/bench/", 1)[0]


def main(what: str, size: int) -> float:
    content = load_image(f"{ROOT}/data/content/astronaut.jpg")
    style = load_image(f"{ROOT}/data/style/swirls.jpg")
    if what == "cold":  # process start -> first frame: imports, model build, targets, 1 step
        settings = TransferSettings(size=size)
        next(iter(transfer(content, style, settings, load_extractor(settings.model))))
        return time.perf_counter() - start
    settings = TransferSettings(size=size, steps=3, scales=1)  # peak RSS at full size
    list(transfer(content, style, settings, load_extractor(settings.model)))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB


if __name__ == "__main__":
    print(main(sys.argv[1], int(sys.argv[2])))
