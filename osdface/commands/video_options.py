"""The ``osdface restore`` options for clips (kept apart so ``osdface.commands.restore`` stays
about what photos and clips share):

    --detect-every 1               run the face detector on every k-th frame
    --smooth-min-cutoff/--smooth-beta, --no-smooth   the landmarks' One Euro filter
    --side-by-side                 also write NAME.side_by_side.mp4 (input | restored)
    --video-format mp4             the output container (H.264 in MP4 plays in every browser)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from osdface.video.smoothing import OneEuroSettings
from osdface.video.tracking import TrackerSettings

VIDEO_FORMATS = ("mp4", "mkv", "mov", "webm")


@dataclass(frozen=True)
class ClipSettings:
    """What the command does with clips, converted from the namespace at the boundary."""

    tracking: TrackerSettings = field(default_factory=TrackerSettings)
    side_by_side: bool = False
    suffix: str = ".mp4"

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> ClipSettings:
        smoothing = OneEuroSettings(
            min_cutoff=args.smooth_min_cutoff, beta=args.smooth_beta, enabled=not args.no_smooth
        )
        return cls(
            tracking=TrackerSettings(detect_every=args.detect_every, smoothing=smoothing),
            side_by_side=args.side_by_side,
            suffix=f".{args.video_format}",
        )


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = OneEuroSettings()
    group = parser.add_argument_group(
        "video clips (mp4, mov, webm, mkv, avi: every face tracked and restored, the audio copied)"
    )
    group.add_argument(
        "--detect-every",
        type=int,
        default=TrackerSettings().detect_every,
        metavar="K",
        help="run the face detector on every K-th frame; the frames between follow the tracks (default: 1)",
    )
    group.add_argument(
        "--smooth-min-cutoff",
        type=float,
        default=defaults.min_cutoff,
        metavar="HZ",
        help="One Euro filter on the landmarks: cut-off for a still face; lower is steadier "
        f"(default: {defaults.min_cutoff})",
    )
    group.add_argument(
        "--smooth-beta",
        type=float,
        default=defaults.beta,
        help=f"One Euro filter: how fast the cut-off rises with speed; higher follows quick moves "
        f"(default: {defaults.beta})",
    )
    group.add_argument(
        "--no-smooth", action="store_true", help="use the detector's landmarks as they are (no filter)"
    )
    group.add_argument(
        "--side-by-side",
        action="store_true",
        help="also write NAME.side_by_side.mp4: the input beside the result",
    )
    group.add_argument(
        "--video-format",
        choices=VIDEO_FORMATS,
        default="mp4",
        help="container of restored clips: mp4 (H.264, plays in browsers), mkv, mov, webm (VP9) (default: mp4)",
    )
