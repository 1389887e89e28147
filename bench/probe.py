"""Fresh-process measurements for the benchmark:
``python -m bench.probe cold|memory|parts|first|first-warm SIZE``.

Run in a new process so that import time, model build and peak RSS are not hidden by what the
benchmark process already loaded.
"""

import resource
import sys
import time

start = time.perf_counter()

ROOT = __file__.rsplit("/bench/", 1)[0]


def parts(size: int) -> str:
    """Where the cold start goes, as ``key=seconds``: importing the light library (settings,
    images), importing the engine (TensorFlow, Keras), building the model with its weights,
    the targets and first step (the one trace included), and the total."""
    from stransfer import TransferSettings
    from stransfer.io.images import load_image

    light = time.perf_counter()
    from stransfer.engine.features import load_extractor
    from stransfer.engine.run import transfer

    engine = time.perf_counter()
    content = load_image(f"{ROOT}/data/content/astronaut.jpg")
    style = load_image(f"{ROOT}/data/style/swirls.jpg")
    settings = TransferSettings(size=size)
    extractor = load_extractor(settings.model)
    built = time.perf_counter()
    next(iter(transfer(content, style, settings, extractor)))
    first = time.perf_counter()
    return (
        f"library_import={light - start:.3f} engine_import={engine - light:.3f} "
        f"model_build={built - engine:.3f} first_step={first - built:.3f} "
        f"total={first - start:.3f}"
    )


def first_run(size: int, warm: bool) -> str:
    """A new worker's first default job (astronaut + brush strokes, the default recipe) from
    Run to its first frame, after ``execute.warm_up`` when ``warm`` (as workers do while
    idle) or without it (before): ``key=seconds``, the warm-up's own time apart."""
    from stransfer.core.recipe import make_recipe
    from stransfer.engine import run
    from stransfer.engine.features import load_extractor
    from stransfer.io.images import load_image
    from stransfer.service.execute import warm_up

    started = time.perf_counter()
    if warm:
        warm_up()
    ready = time.perf_counter()
    content = load_image(f"{ROOT}/data/content/astronaut.jpg")
    style = load_image(f"{ROOT}/data/style/brush_strokes.jpg")
    recipe = make_recipe({"size": size})
    extractor = load_extractor(recipe.settings.model, recipe.settings.precision)
    next(iter(run.run_recipe(recipe, content, [style], extractor)))
    return f"warm_up={ready - started:.3f} first_frame={time.perf_counter() - ready:.3f}"


def main(what: str, size: int) -> float | str:
    if what == "parts":
        return parts(size)
    if what in ("first", "first-warm"):
        return first_run(size, what == "first-warm")
    from stransfer import TransferSettings, load_extractor, load_image, transfer

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
