"""What results become: semantic point clouds (camera intrinsics, the one back-projection, PLY
files) and the Rerun view.

Needs no model and imports nothing of deploy/: it works on label maps, depth and intrinsics, so
deploy/ (predict, `Segmentation.points`), the streaming runtime and the robot tools all share it.
rerun-sdk, plyfile and PyYAML are imported only where they are used.
"""

from .points import Intrinsics, SemanticPoints, back_project, write_ply
from .rerun_view import RerunView

__all__ = ["Intrinsics", "RerunView", "SemanticPoints", "back_project", "write_ply"]
