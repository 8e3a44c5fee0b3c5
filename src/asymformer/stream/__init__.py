"""The streaming runtime: `StreamRunner` keeps the newest camera frame and overlaps pre-processing,
the model and post-processing of consecutive frames on three stage threads, so a robot reads label
maps that are as fresh as the model allows (runner.py; the stage threads: stages.py).

Sits above deploy/ (it runs any `Segmenter`, whatever its backend) and below robot/, whose live node
and real-time replay hand their frames to it.
"""

from .runner import StreamResult, StreamRunner

__all__ = ["StreamResult", "StreamRunner"]
