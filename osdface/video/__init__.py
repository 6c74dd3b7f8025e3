"""Video clips: every face of a clip restored, steady from frame to frame.

- ``container``: reading (header, limits, upright frames with their timestamps);
- ``writer``: writing (the input's timestamps and rotation, H.264 in MP4 by default, the audio
  copied unchanged), ``copy_streams``, ``side_by_side``;
- ``smoothing``: the One Euro filter that steadies each face's landmarks;
- ``tracking``: which face is which from frame to frame;
- ``flicker``: the frame-to-frame change inside the faces, output against input;
- ``resume``: detections and restored faces kept for an interrupted run;
- ``clip_restorer``: ``ClipRestorer``, the loop over frames;
- ``clip_batch``: clip files restored into an output folder (``osdface restore clip.mp4``).
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "container": ["VideoFrame", "VideoInfo", "VideoLimits", "check_limits", "probe", "read_frames"],
        "writer": ["OutputFormat", "VideoWriter", "copy_streams", "output_format", "side_by_side"],
        "smoothing": ["OneEuroFilter", "OneEuroSettings"],
        "tracking": ["FaceTracker", "TrackedFace", "TrackerSettings"],
        "flicker": ["FlickerMeter", "FlickerReport"],
        "clip_restorer": [
            "PRIMARY",
            "STAGES",
            "ClipRestorer",
            "VideoOptions",
            "VideoResult",
            "clip_batch_size",
        ],
        "clip_batch": ["VIDEO_EXTENSIONS", "collect_clips", "is_clip", "restore_clips"],
    },
)
