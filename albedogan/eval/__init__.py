"""albedogan.eval: evaluation protocols (NoW) and exact geometry helpers (point-to-surface distance, Umeyama)."""

from albedogan.eval.geometry import (
    apply_similarity,
    closest_point_on_triangles,
    compose_similarity,
    point_to_mesh_distance,
    point_to_triangle_distance,
    point_to_triangle_distance_bruteforce,
    umeyama,
)
from albedogan.eval.now import NowResult, evaluate_now, evaluate_scan, export_now_prediction

__all__ = [
    "NowResult",
    "apply_similarity",
    "closest_point_on_triangles",
    "compose_similarity",
    "evaluate_now",
    "evaluate_scan",
    "export_now_prediction",
    "point_to_mesh_distance",
    "point_to_triangle_distance",
    "point_to_triangle_distance_bruteforce",
    "umeyama",
]
