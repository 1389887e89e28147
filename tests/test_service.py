"""The job store and request checks in-process (no workers, no TensorFlow): fast."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from servers import png

from stransfer.io.images import encode_png
from stransfer.service import (
    BadRequest,
    Busy,
    InvalidSettings,
    JobRequest,
    Limits,
    NoSuchJob,
    TooLarge,
)
from stransfer.service.limits import check_request
from stransfer.service.store import Store


def _checked(settings=None, **kw):
    request = JobRequest(content=png(0), styles=[(png(1), 1.0)], settings=settings or {}, **kw)
    return check_request(request, Limits())


def _add(store: Store, client: str = "a", **kw):
    return store.add(_checked({"steps": 5, "size": 64}), client=client, limits=Limits(), **kw)


def test_job_is_stored_with_its_inputs_and_hashes(tmp_path):
    store = Store(tmp_path)
    view = _add(store)
    assert view.state == "queued" and view.position == 1 and view.steps == 5
    folder = tmp_path / "jobs" / view.id
    assert (folder / "content").read_bytes() == png(0)
    assert (folder / "style-0").read_bytes() == png(1)
    details = Store(tmp_path).details(view.id)  # a second process's view of the same folder
    assert len(details["inputs"]["content_sha256"]) == 64
    assert details["settings"]["style_weight"] == 2.0 and details["extra"]["strength"] == 100.0


def test_strength_scales_the_weights_like_the_cli():
    checked = _checked({"strength": 0})
    assert checked.settings["style_weight"] == 0.0 and checked.settings["tv_weight"] == 0.0
    assert checked.extra["strength"] == 0


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"steps": 0}, InvalidSettings),
        ({"seed": "x"}, InvalidSettings),
        ({"nope": 1}, InvalidSettings),
        ({"engine": "magic"}, InvalidSettings),
        ({"steps": 10_000, "size": 1024}, TooLarge),
    ],
)
def test_bad_settings_are_refused(settings, error):
    with pytest.raises(error):
        _checked(settings)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"steps": -3}, "steps"),
        ({"size": "big"}, "size"),
        ({"seed": -1}, "seed"),
        ({"strength": 150}, "strength"),
        ({"stepz": 5}, "stepz"),
        ({"model": "VGG99"}, "model"),
        ({"style_layers": {"no_such_layer": 1.0}}, "style_layers"),
        ({"engine": "magic"}, "engine"),
        ({"builtin": 7}, "builtin"),  # built-ins need engine instant
        ({"engine": "instant", "size": 9000}, "size"),  # beyond the instant engine's 8192
        ({"engine": "instant", "builtin": 26}, "builtin"),
        ({"steps": 10_000, "size": 1024}, "steps"),
    ],
)
def test_errors_name_the_field(settings, field):
    with pytest.raises((InvalidSettings, TooLarge)) as caught:
        _checked(settings)
    assert caught.value.field == field
    assert str(caught.value) and "\n" not in str(caught.value)


def test_a_time_budget_bounds_the_work_whatever_the_steps():
    # The page's default "Run for: a time budget" sends the step ceiling with a 60 s budget:
    # the budget bounds the work (issue 18: this was refused at every size above 161 px).
    from stransfer.core.settings import MAX_STEPS

    for size in (512, 1024, 2048):
        checked = _checked({"steps": MAX_STEPS, "max_seconds": 60, "size": size})
        assert checked.settings["max_seconds"] == 60 and checked.steps == MAX_STEPS
    with pytest.raises(TooLarge) as caught:
        _checked({"max_seconds": Limits().max_job_seconds + 1})
    assert caught.value.field == "max_seconds" and "at most" in str(caught.value)


def test_a_step_counted_job_is_bounded_by_its_plans_pixel_steps():
    from stransfer.core.recipe import make_recipe

    limits = Limits()
    # Two scales from the photo: 1000 steps at 512 px plan 500 x 256^2 + 500 x 512^2.
    plan = make_recipe({"steps": 1000, "init": "content"}).plan((512, 512))
    assert plan.pixel_steps == 500 * 256 * 256 + 500 * 512 * 512 < limits.max_pixel_steps
    assert _checked({"steps": 1000}).steps == 1000  # the test photo is 512x384 at size 512
    with pytest.raises(TooLarge) as caught:
        _checked({"steps": 3000})
    best = limits.max_pixel_steps // (512 * 384)
    message = str(caught.value)
    assert caught.value.field == "steps" and f"use at most {best} steps" in message, message


def test_style_weights_are_checked_by_the_recipe():
    request = JobRequest(content=png(0), styles=[(png(1), -1.0)])
    with pytest.raises(InvalidSettings) as caught:
        check_request(request, Limits())
    assert caught.value.field == "style_weights"


def test_a_size_too_small_for_the_model_is_refused_before_it_is_stored():
    # A 200:1 strip at 64 px leaves a short side below VGG19's 32 px: 422 at submit, not a
    # failed job later.
    content = png(0, 10, 2000)
    request = JobRequest(content=content, styles=[(png(1), 1.0)], settings={"size": 64})
    with pytest.raises(InvalidSettings) as caught:
        check_request(request, Limits())
    assert caught.value.field == "size"


def test_instant_jobs_are_one_step_and_keep_their_engine(tmp_path):
    checked = _checked({"engine": "instant", "size": 256, "strength": 40, "steps": 500})
    assert checked.steps == 1 and checked.extra["engine"] == "instant"
    assert checked.extra["strength"] == 40
    view = Store(tmp_path).add(checked, client="a", limits=Limits())
    assert view.steps == 1
    # A built-in style needs no file; the blend is kept with shares that sum to 1.
    builtin = check_request(
        JobRequest(
            content=png(0), styles=[], settings={"engine": "instant", "builtin": {"3": 1, "12": 3}}
        ),
        Limits(),
    )
    assert builtin.styles == [] and builtin.extra["builtin"] == {
        "builtin:3": 0.25,
        "builtin:12": 0.75,
    }
    with pytest.raises(InvalidSettings, match="continue"):
        _checked({"engine": "instant"}, resume_from=png(2))


def test_bad_images_are_refused():
    with pytest.raises(BadRequest, match="not an image"):
        check_request(JobRequest(content=b"text", styles=[(png(1), 1.0)]), Limits())
    with pytest.raises(InvalidSettings, match="weight above 0"):
        check_request(JobRequest(content=png(0), styles=[(png(1), 0.0)]), Limits())
    with pytest.raises(BadRequest, match="no style image"):
        check_request(JobRequest(content=png(0), styles=[]), Limits())


@pytest.mark.parametrize("job_id", ["../jobs.db", "x" * 24, "0123456789ABCDEF01234567", ""])
def test_ids_that_are_not_ours(tmp_path, job_id):
    store = Store(tmp_path)
    with pytest.raises(NoSuchJob):
        store.get(job_id)
    with pytest.raises(NoSuchJob):
        store.folder(job_id)


def test_claim_is_fair_across_clients(tmp_path):
    store = Store(tmp_path)
    a = [_add(store, "a").id for _ in range(3)]
    b = _add(store, "b").id
    first = store.claim("w1")
    second = store.claim("w2")  # b has nothing running: b's job goes before a's second
    assert (first.id, second.id) == (a[0], b)
    assert store.claim("w3").id == a[1]


def test_queue_limits(tmp_path):
    store = Store(tmp_path)
    limits = Limits(max_queued_per_client=2, max_queued=3)
    checked = _checked({"steps": 5, "size": 64})
    store.add(checked, client="a", limits=limits)
    store.add(checked, client="a", limits=limits)
    with pytest.raises(Busy, match="2 jobs waiting"):
        store.add(checked, client="a", limits=limits)
    store.add(checked, client="b", limits=limits)
    with pytest.raises(Busy, match="queue is full") as err:
        store.add(checked, client="c", limits=limits)
    assert err.value.retry_after > 0


def test_stale_attempt_cannot_write(tmp_path):
    store = Store(tmp_path)
    job = _add(store)
    task = store.claim("w1")
    store.heartbeat("w1", task.id, task.attempt)
    time.sleep(0.05)
    assert store.requeue_stale(0.01, max_attempts=3) == [job.id]
    again = store.claim("w2")
    assert again.attempt == task.attempt + 1
    view = {"step": 1, "steps": 5, "losses": {}, "phase": "x", "seconds_per_step": 0.1}
    view |= {"eta": 1.0, "elapsed": 0.1}
    assert not store.progress(task.id, task.attempt, view)  # the old worker is refused
    assert not store.finish(task.id, task.attempt, "done")
    assert store.progress(again.id, again.attempt, view)
    assert store.get(job.id).state == "running"


def test_orphaned_job_fails_after_max_attempts(tmp_path):
    store = Store(tmp_path)
    job = _add(store)
    for _ in range(3):
        task = store.claim("w")
        assert task is not None and task.id == job.id
        time.sleep(0.02)
        store.requeue_stale(0.01, max_attempts=3)
    view = store.get(job.id)
    assert view.state == "failed"
    assert "failed after 3 attempts" in view.message and "stopped responding" in view.message
    assert store.claim("w") is None


def test_checkpoint_becomes_the_start_of_the_next_attempt(tmp_path):
    store = Store(tmp_path)
    job = _add(store)
    task = store.claim("w1")
    assert task.start_image is None and task.done_before == 0
    assert store.checkpoint(task.id, task.attempt, png(5), step=3, elapsed=1.5)
    assert store.release(task.id, task.attempt, "worker stopped")
    again = store.claim("w2")
    assert again.from_checkpoint and again.done_before == 3 and again.elapsed_before == 1.5
    assert again.start_image.read_bytes() == png(5)
    assert store.details(job.id)["failures"] == 0  # a clean hand-back is not a failure


def test_cancel_queued_is_final_and_conflicts_after(tmp_path):
    from stransfer.service import Conflict

    store = Store(tmp_path)
    job = _add(store)
    assert store.cancel(job.id).state == "cancelled"
    with pytest.raises(Conflict):
        store.cancel(job.id)
    with pytest.raises(Conflict):
        store.result(job.id)


def test_service_modules_do_not_import_tensorflow():
    # The test session may have TensorFlow from other tests; check in a clean interpreter.
    import subprocess

    import stransfer.service.api
    import stransfer.service.local  # noqa: F401

    code = (
        "import sys, stransfer.service.api, stransfer.service.local, stransfer.cli.serve;"
        "print([m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_prints_checkpoint_is_taken_back_whatever_the_upload_limits():
    """A restarted print goes on from its own checkpoint: at 8000x6000 it is past the upload
    limits (40 megapixels), which the service's own picture must not be held to."""
    from stransfer.io.images import MAX_PIXELS, ImageError, load_image
    from stransfer.service.execute import start_image

    big = np.zeros((6000, 8000, 3), np.uint8)
    big[::7, ::5] = (200, 30, 90)
    data = encode_png(big, fast=True)
    with pytest.raises(ImageError):
        load_image(data)  # what a start image met before
    assert MAX_PIXELS < 8000 * 6000
    np.testing.assert_array_equal(start_image(data), big)
