"""Line searches: step-length rules along a descent direction."""

from ._backtracking import Backtracking as Backtracking
from ._base import AbstractLineSearch as AbstractLineSearch
from ._base import LineSearchResult as LineSearchResult
from ._hager_zhang import HagerZhang as HagerZhang
from ._more_thuente import MoreThuente as MoreThuente
from ._zoom import Zoom as Zoom
