"""Every score of the course: metrics and the ground-truth benchmark: how close is a reconstructed albedo to the true one?

Real photos have no ground-truth albedo, so the course measures texture quality on the synthetic
benchmark (:func:`facelib.data.benchmark`, seed 2020): faces of the open model whose true albedo,
with its added detail (freckles, moles, stubble, make-up, wrinkles), is known per vertex. A method
is anything that maps a benchmark batch to a per-vertex albedo on the benchmark's mesh, together with
the shape, pose and lighting it believes in (:class:`Prediction`), for example "the regressor's 3DMM
albedo" or "the regressor's albedo refined by a trained TextureGCN".

Metrics, per face, then averaged over the benchmark:

* **albedo error**: the mean per-vertex L1 distance, averaged over RGB,

      e = sum_v w_v |T'_v - T*_v|_1 / (3 sum_v w_v),

  over three vertex sets ``w``: ``face`` (the model's skin region), ``visible`` (skin vertices the
  camera sees in the input image: the only ones whose colour the photo shows) and ``detail`` (skin
  vertices where the detail layer moved the true colour by more than ``detail_threshold``, the
  high-frequency band a 3DMM cannot hold). Lower is better; 0 is perfect. Each is also reported
  **scale-invariant** ("face SI", "detail SI"): after the per-face, per-channel gain that best
  matches the truth over the face. From one photo, albedo and light are determined only up to
  such a gain, and a fit's guess of it (steered by its lighting prior) often dominates the plain
  error; the scale-invariant error scores the pattern of the albedo, which is what texture
  refinement can change.
* **PSNR** and **SSIM** of the method's rendering against the input image, inside the face mask
  (the true face pixels that the method's rendering also covers). Higher is better. These score
  the whole reconstruction as the photometric loss sees it, so a method can win here by baking
  light into the albedo; the albedo error is the one that cannot be gamed that way.
* **identity distance** (with an ``encoder``): the distance between the identity network's
  descriptors of the input image and of the method's rendering pasted over it
  (:func:`~facelib.losses.identity.identity_distance`; dlib's network calls two faces the same
  person below 0.6). Lower is better: the reconstruction still looks like the person.

:func:`rerender_scores` gives the last three for a real photo, which has no true albedo.

The modules, one idea each:

* :mod:`~facelib.evaluate.metrics`: the per-face scores (albedo errors, PSNR, SSIM, identity distance);
* :mod:`~facelib.evaluate.bootstrap`: paired-bootstrap intervals of a change between two methods;
* :mod:`~facelib.evaluate.benchmark`: the benchmark loop over methods, and the tables;
* :mod:`~facelib.evaluate.regressor`: the coarse-stage regressor against the mean face;
* :mod:`~facelib.evaluate.photos`: re-rendering scores of a reconstructed real photo;
* :mod:`~facelib.evaluate.identity`: the identity network measured on facelib's inputs
  (``python -m facelib.evaluate.identity``);
* :mod:`~facelib.evaluate.pipeline`: ``reconstruct``'s stages as benchmark methods;
* :mod:`~facelib.evaluate.runs`: trained GCN runs as benchmark methods, and the ablation study.

These last ones (from ``regressor`` on) compose the fit, the pipeline and the trainer, which themselves use the scores above, so this
package's ``__init__`` does not import them: ``from facelib.evaluate.runs import ...``.
"""

from facelib.evaluate.benchmark import (ALBEDO_ERRORS, DETAIL_SHARE_SPLIT, DETAIL_THRESHOLD, TABLE_LEGEND, VERTEX_SETS, Method,
                                        Prediction, Scores, detail_split, detail_split_table, evaluate, ground_truth,
                                        improvement_table, once_per_batch, score_change_table, table, truth_masks)
from facelib.evaluate.bootstrap import paired_difference, paired_improvement
from facelib.evaluate.metrics import albedo_error, psnr, rerender_scores, ssim

__all__ = ["ALBEDO_ERRORS", "DETAIL_SHARE_SPLIT", "DETAIL_THRESHOLD", "TABLE_LEGEND", "VERTEX_SETS", "Method", "Prediction",
           "Scores", "albedo_error", "detail_split", "detail_split_table", "evaluate", "ground_truth", "improvement_table",
           "once_per_batch", "paired_difference", "paired_improvement", "psnr", "rerender_scores", "score_change_table", "ssim",
           "table", "truth_masks"]
