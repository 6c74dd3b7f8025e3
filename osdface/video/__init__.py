"""Video clips: reading (``container``: header, limits, upright frames) and writing (``writer``:
encoded frames with the input's timestamps and rotation, its audio copied unchanged)."""

from osdface.video.container import VideoFrame, VideoInfo, VideoLimits, check_limits, probe, read_frames
from osdface.video.writer import OutputFormat, VideoWriter, copy_streams, output_format, side_by_side

__all__ = [
    "OutputFormat",
    "VideoFrame",
    "VideoInfo",
    "VideoLimits",
    "VideoWriter",
    "check_limits",
    "copy_streams",
    "output_format",
    "probe",
    "read_frames",
    "side_by_side",
]
