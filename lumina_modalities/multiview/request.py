"""What one multi-view sample to generate needs besides its size: the cameras of its views and the pixels of
the views that are given.

A :class:`ViewsRequest` names these parts. Its value as a tuple is the packed shape descriptor

    (V, C, H, W, *12 V camera numbers, *k C H W pixel values of the k given views)

which is what the plugin contract's shapes are (``sample_shape``, ``default_shape``, ``layout``; a tuple is also
what ``TokenBatch.shapes`` keeps and what ``lumina serve``'s shape field parses), so a request goes anywhere a
shape goes and any packed descriptor reads back as a request: ``ViewsRequest(descriptor).cameras``.
Camera numbers are the rows 0-2 of each view's 4 x 4 camera-to-world matrix (:mod:`.cameras`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

CAM = 12  # camera numbers per view


class ViewsRequest(tuple):
    """``V`` views of ``C x H x W`` pixels at ``cameras``, the first ``k`` of them ``given`` (k may be 0).

    Build one with :meth:`make`; ``ViewsRequest(descriptor)`` checks a packed descriptor and reads it."""

    __slots__ = ()

    def __new__(cls, descriptor: Sequence[Any] = ()) -> ViewsRequest:
        values = tuple(descriptor)
        if len(values) < 4:
            raise ValueError(f"a multiview shape starts with (V, C, H, W); got {values[:8]}")
        v, c, h, w = (int(x) for x in values[:4])
        extra = len(values) - 4 - CAM * v
        if extra < 0 or extra % (c * h * w) or extra // (c * h * w) >= v:
            raise ValueError(
                f"a multiview shape is (V, C, H, W) followed by 12 camera numbers per view ({CAM * v} for "
                f"V={v}), then C H W = {c * h * w} pixel values per given view (fewer than V); got "
                f"{len(values) - 4} numbers after (V, C, H, W)"
            )
        return super().__new__(cls, values)

    @classmethod
    def make(
        cls, channels: int, size: Sequence[int], cameras: Tensor, given: Tensor | None = None
    ) -> ViewsRequest:
        """From the parts: ``cameras`` (V, 4, 4) or (V, 3, 4) camera-to-world, ``given`` (k, C, H, W) or None."""
        v = int(cameras.shape[0])
        cams = cameras[:, :3, :4].float().flatten().tolist()
        pixels = [] if given is None else given.float().flatten().tolist()
        return cls((v, int(channels), *(int(s) for s in size), *cams, *pixels))

    # -- the parts -----------------------------------------------------------------------------------------
    @property
    def views(self) -> int:
        return int(self[0])

    @property
    def channels(self) -> int:
        return int(self[1])

    @property
    def size(self) -> tuple[int, int]:
        return int(self[2]), int(self[3])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(V, C, H, W)``: the views' pixels (cameras not counted)."""
        return self.views, self.channels, *self.size

    @property
    def num_given(self) -> int:
        c, (h, w) = self.channels, self.size
        return (len(self) - 4 - CAM * self.views) // (c * h * w)

    @property
    def cameras(self) -> Tensor:
        """(V, 4, 4) float64 camera-to-world matrices."""
        v = self.views
        rows = torch.tensor(self[4 : 4 + CAM * v], dtype=torch.float64).reshape(v, 3, 4)
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(v, 1, 4)
        return torch.cat([rows, bottom], dim=1)

    @property
    def given(self) -> Tensor | None:
        """(k, C, H, W) float32 pixels of the given views, or None when none is given."""
        if not self.num_given:
            return None
        pixels = self[4 + CAM * self.views :]
        return torch.tensor(pixels, dtype=torch.float32).reshape(-1, self.channels, *self.size)

    def __repr__(self) -> str:
        return f"ViewsRequest(views={self.views}, channels={self.channels}, size={self.size}, given={self.num_given})"
