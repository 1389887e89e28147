"""Instant mode's video: a short upload stylised frame by frame, offered for download.

It runs in the page's process (the instant engine is onnxruntime: no TensorFlow, and it never
waits behind an optimisation in the job queue), with a progress bar, after the button is
pressed. Limits are stated in the uploader; a broken or too long video gets one sentence.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from stransfer.core.events import format_duration

from .state import MIXED_BLEND, Request

VIDEO_MB = 50  # the uploader's limit
VIDEO_MAX_SECONDS = 30.0  # a longer video belongs to the CLI (``python -m stransfer video``)
VIDEO_SIDE = 640  # the result's long side at most (about 3-6 frames/s on 2 cores)
VIDEO_KEY = "_video_result"  # session state: ((upload id, signature), mp4 bytes, summary)


def video_uploader() -> Any:
    """The uploader for a short MP4 (Instant mode); returns the upload or None."""
    with st.expander("Video"):
        return st.file_uploader(
            f"A short video (MP4, up to {VIDEO_MB} MB and {VIDEO_MAX_SECONDS:.0f} s)",
            type=["mp4"],
            key="video_upload",
            max_upload_size=VIDEO_MB,
            help=f"Painted frame by frame in the chosen style at up to {VIDEO_SIDE} px, sound "
            "kept. Longer videos: python -m stransfer video IN.mp4 STYLE -o OUT.mp4",
        )


def video_style(request: Request) -> Any:
    """The instant engine's fixed style for the whole video (a vector, or built-in styles)."""
    import io

    from stransfer.instant import BuiltinStyle, style_vector
    from stransfer.io.images import load_image

    if all(choice.builtin is not None for choice in request.styles):
        blend: dict[int, float] = {}
        for choice, weight in zip(request.styles, request.mix, strict=True):
            blend[choice.builtin] = blend.get(choice.builtin, 0.0) + weight
        return BuiltinStyle.of(blend)
    if request.mixed_blend:
        raise ValueError(MIXED_BLEND)
    return style_vector(
        [
            (load_image(io.BytesIO(choice.data), name=choice.name or "style"), weight)
            for choice, weight in zip(request.styles, request.mix, strict=True)
            if weight > 0
        ]
    )


def video_panel(request: Request) -> None:
    """Below the Output: stylise the uploaded video on request, then offer it for download."""
    upload = request.video
    if upload is None:
        return
    st.subheader("Video")
    settings = (upload.file_id, request.signature())
    kept = st.session_state.get(VIDEO_KEY)
    if kept is not None and kept[0] != settings:
        kept = None
    if st.button("Paint the video", key="video_run", disabled=kept is not None):
        kept = stylise_upload(upload, request, settings)
    if kept is not None:
        _, mp4, summary = kept
        st.caption(summary)
        st.download_button(
            "Download video (MP4)",
            data=mp4,
            file_name=f"stransfer_{Path(upload.name).stem}.mp4",
            mime="video/mp4",
            key="download_video",
            on_click="ignore",
        )


def stylise_upload(upload: Any, request: Request, settings: tuple) -> tuple | None:
    """Run the video through the instant engine with a progress bar; one sentence on failure."""
    from stransfer.instant import InstantModelError
    from stransfer.instant.video import probe, stylise_video

    bar = st.progress(0.0, text="reading the video")
    with tempfile.TemporaryDirectory(prefix="stransfer-video-") as folder:
        source = Path(folder) / (Path(upload.name).stem + ".mp4")
        source.write_bytes(upload.getvalue())
        try:
            info = probe(source)
            seconds = (info.frames or 0) / info.fps
            if seconds > VIDEO_MAX_SECONDS:
                raise ValueError(
                    f"{upload.name} lasts {format_duration(seconds)}, longer than the "
                    f"{VIDEO_MAX_SECONDS:.0f} s this page paints; cut it (ffmpeg -i IN -t 30 "
                    "-c copy OUT.mp4) or use python -m stransfer video"
                )

            def on_frame(done: int, expected: int | None, elapsed: float) -> None:
                rate = done / elapsed if elapsed > 0 else 0.0
                fraction = min(1.0, done / expected) if expected else 0.0
                total = f"/{expected}" if expected else ""
                bar.progress(fraction, text=f"frame {done}{total} · {rate:.1f} frames/s")

            result = stylise_video(
                source,
                Path(folder) / "out.mp4",
                video_style(request),
                # the chosen size, but never above the page's cap or the source's own size
                size=min(int(request.fields["size"]), VIDEO_SIDE, max(info.width, info.height)),
                strength=float(request.fields["strength"]),
                preserve_color=str(request.fields["preserve_color"]),
                on_frame=on_frame,
            )
            mp4 = result.path.read_bytes()
        except (ValueError, OSError, RuntimeError, InstantModelError) as err:
            bar.empty()
            text = " ".join(str(err).split()) or type(err).__name__
            st.error(text)  # starts with the file name, as the user wrote it
            return None
    bar.empty()
    summary = (
        f"{result.frames} frames at {result.width}x{result.height} in "
        f"{format_duration(result.seconds)} ({result.frames / max(result.seconds, 1e-9):.1f} "
        f"frames/s){', sound kept' if result.audio else ''}."
    )
    kept = (settings, mp4, summary)
    st.session_state[VIDEO_KEY] = kept
    return kept
