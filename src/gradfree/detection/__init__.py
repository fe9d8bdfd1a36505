"""The YOLO-style car detector as an application: its benchmark trials (kind ``"detection"``: training from
scratch, the hybrid head route, gradient-free fine-tuning on a non-differentiable objective), the
``car-detection`` suite, its report sections, pictures of detections, and the ``gradfree detect`` command.

The detector itself lives where its layers do: the data in :mod:`gradfree.data.car_detection`, the boxes and
the model in :mod:`gradfree.models.boxes` and :mod:`gradfree.models.yolo`, the task, loss and metric in
:mod:`gradfree.tasks.detection` and its neighbours.
"""
