"""Great-circle distances and a latitude/longitude grid that finds the nearest points fast.

`haversine_km` is the one distance ticketflow uses: the haversine formula on a sphere of radius
6371.0088 km (the mean Earth radius), so two places' distance is the same wherever it is
computed. `GeoGrid` answers "which of these points are nearest to here, and which are within
`tie_km` of the nearest" without measuring every point.

How the grid works. The sphere is cut into cells of `cell` degrees of latitude by `cell`
degrees of longitude; unless told, the grid picks the size (180°/2^k, from 45° down to about
0.0055°) that puts a few (`PER_CELL`) points in an occupied cell, so a sparse set gets big
cells and a dense one small cells. A query visits cells best first, in order of a lower
bound on the haversine term h = sin²(Δφ/2) + cos φ₁·cos φ₂·sin²(Δλ/2) from the query to
anything in the cell,

    h  ≥  sin²(gap_lat/2) + cos φ₁ · min cos φ · sin²(gap_lon/2)

(gap_lat, gap_lon: the query's latitude and circular longitude distances to the cell's edges;
min cos φ: the smaller cosine of the cell's edge latitudes), and stops as soon as that bound
exceeds the h of the best distance found plus `tie_km` (or of `max_km`). The bound stays
correct at the poles, where longitude stops mattering (cos φ → 0), and across the ±180°
meridian, where longitude gaps wrap.

Only occupied cells are visited: each latitude band keeps the sorted columns it has points in,
bands join the search in order of their latitude distance, and a band then hands out its
columns east and west of the query's column, nearest first. A query costs a few heap
operations per occupied cell near the answer, not one distance per point.

When the caller narrows the points to a small set (`among`), measuring those directly is
cheaper than walking the grid past everyone else, and `nearest` does that. Grid and scan use
the same arithmetic, so they return exactly the same answer, to the last bit.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Iterable, Sequence
from functools import lru_cache
from heapq import heapify, heappop, heappush
from math import asin, cos, inf, isfinite, isqrt, pi, radians, sin, sqrt
from typing import Final

EARTH_RADIUS_KM: Final = 6371.0088
# Cell sizes a grid picks from: 180° / 2^k, from 45° (k = 2) down to 0.0055° (about 600 m,
# k = 15: a city's engineers). Each size's cells are the next finer size's cells merged in
# twos both ways, which lets pick_cell count occupied cells at every size in one pass.
COARSEST_K: Final = 2
FINEST_K: Final = 15
# Points per occupied cell a grid aims at: the finest size with at least this many on
# average. Fewer means more heap work per point found, more means measuring more points that
# are not the answer (measured with benchmarks/bench_routing.py).
PER_CELL: Final = 3
PICK_SAMPLE: Final = 4096  # points pick_cell looks at, at most (about)
# `among` sets up to this size (or up to √N, whichever is larger) are measured one by one:
# walking the grid past N/len(among) strangers per candidate costs more than that.
SCAN_AT_MOST: Final = 48
# Rounding slack for pruning: a cell is skipped only when its bound exceeds the cutoff by
# more than floating-point error could explain, so grid and scan agree exactly.
_REL_SLACK: Final = 1e-9
_ABS_SLACK: Final = 1e-30

# id, lat (rad), lon (rad), cos lat, stamp, lat (deg), lon (deg)
Entry = tuple[str, float, float, float, float, float, float]
Found = tuple[float, str]  # distance in km, id
# The search frontier, see GeoGrid.nearest_grid.
_Item = tuple[float, int, int, int, int, float, float, bool]


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in km between two (lat, lon) points in degrees."""
    la, lb = radians(a[0]), radians(b[0])
    return _distance(la, radians(a[1]), cos(la), lb, radians(b[1]), cos(lb))


def _distance(
    lat1: float, lon1: float, cos1: float, lat2: float, lon2: float, cos2: float
) -> float:
    # The one formula. nearest_grid inlines it (same operations, same order), so that the
    # grid, the scan and haversine_km give bit-identical results for the same two points.
    s = sin((lat2 - lat1) / 2)
    t = sin((lon2 - lon1) / 2)
    h = s * s + cos1 * cos2 * t * t
    return 2 * EARTH_RADIUS_KM * asin(sqrt(min(1.0, h)))


def _h_of(km: float) -> float:
    """The haversine term of a distance (inf for inf or for more than half the globe)."""
    return inf if km >= pi * EARTH_RADIUS_KM else sin(km / (2 * EARTH_RADIUS_KM)) ** 2


def check_point(lat: float, lon: float) -> None:
    """Raise ValueError unless (lat, lon) is a finite point in degrees on the globe."""
    if not (isfinite(lat) and isfinite(lon)) or not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise ValueError(f"({lat}, {lon}) is not a location: need -90 ≤ lat ≤ 90, -180 ≤ lon ≤ 180")


@lru_cache(maxsize=32)
def _mincos(cell: float) -> tuple[float, ...]:
    # cos φ is smallest at the band edge nearer a pole; max(0, …) guards rounding at ±90°.
    edges = [cos(radians(-90 + b * cell)) for b in range(round(180 / cell) + 1)]
    return tuple(max(0.0, min(edges[b], edges[b + 1])) for b in range(len(edges) - 1))


def pick_cell(points: Sequence[tuple[float, float]]) -> float:
    """The finest cell size (180° / 2^k) at which occupied cells hold PER_CELL points or more
    on average: spread-out points get big cells, a city's worth of them small ones.

    Past PICK_SAMPLE points it looks at every 4^j-th point only: a sample 4^j times sparser
    wants cells 4^j times larger in area, j levels coarser, so its answer is j levels finer.
    """
    j = 0
    while len(points) >> (2 * j) > PICK_SAMPLE:
        j += 1
    sample = points[:: 1 << (2 * j)]
    k = FINEST_K - j
    size = 180 / (1 << k)
    # Occupied cells at the finest size, then merged two by two into the next coarser size.
    occupied = {(int((lat + 90) / size), int(((lon + 180) % 360) / size)) for lat, lon in sample}
    while k + j > COARSEST_K and len(sample) < PER_CELL * len(occupied):
        occupied = {(band >> 1, col >> 1) for band, col in occupied}
        k -= 1
    return 180 / (1 << (k + j))


class GeoGrid:
    """An immutable grid of points (id, lat, lon, stamp) for nearest-point queries.

    `stamp` is any number the caller compares (a POSIX time of the location, say); a query's
    `min_stamp` skips points with a smaller one. Points are in degrees and must be valid.
    """

    __slots__ = ("_bands", "_cell", "_cells", "_cols", "_entries", "_mincos", "_nbands", "_ncols")

    def __init__(
        self, points: Iterable[tuple[str, float, float, float]], cell_deg: float | None = None
    ) -> None:
        entries: dict[str, Entry] = {}
        for pid, lat, lon, stamp in points:
            check_point(lat, lon)
            la = radians(lat)
            entries[pid] = (pid, la, radians(lon), cos(la), stamp, lat, lon)
        self._place(entries, cell_deg)

    def subset(self, ids: Iterable[str], cell_deg: float | None = None) -> GeoGrid:
        """A grid of just these points (ids without a point are left out), sized for them."""
        grid = GeoGrid.__new__(GeoGrid)
        mine = self._entries
        grid._place({pid: mine[pid] for pid in ids if pid in mine}, cell_deg)
        return grid

    def _place(self, entries: dict[str, Entry], cell_deg: float | None) -> None:
        cell = cell_deg or pick_cell([(e[5], e[6]) for e in entries.values()])
        nbands = round(180 / cell)
        if cell <= 0 or abs(nbands * cell - 180) > 1e-9:
            raise ValueError(f"cell_deg must divide 180 evenly, not {cell}")
        ncols = 2 * nbands
        self._cell, self._nbands, self._ncols = cell, nbands, ncols
        self._entries = entries
        cells: dict[int, list[Entry]] = {}
        for e in entries.values():
            band = min(nbands - 1, int((e[5] + 90) / cell))
            col = min(ncols - 1, int(((e[6] + 180) % 360) / cell))
            cells.setdefault(band * ncols + col, []).append(e)
        self._cells: dict[int, tuple[Entry, ...]] = {k: tuple(v) for k, v in cells.items()}
        cols: dict[int, list[int]] = {}
        for key in sorted(cells):
            cols.setdefault(key // ncols, []).append(key % ncols)
        self._cols: dict[int, tuple[int, ...]] = {b: tuple(c) for b, c in cols.items()}
        self._bands: tuple[int, ...] = tuple(sorted(cols))
        self._mincos = _mincos(cell)

    @property
    def cell_deg(self) -> float:
        return self._cell

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, pid: object) -> bool:
        return pid in self._entries

    def distance_km(self, lat: float, lon: float, pid: str) -> float | None:
        """The distance from (lat, lon) to the point `pid`, None if it has none."""
        e = self._entries.get(pid)
        if e is None:
            return None
        la = radians(lat)
        return _distance(la, radians(lon), cos(la), e[1], e[2], e[3])

    def stamp(self, pid: str) -> float | None:
        e = self._entries.get(pid)
        return None if e is None else e[4]

    def nearest(
        self,
        lat: float,
        lon: float,
        *,
        among: Collection[str] | None = None,
        tie_km: float = 0.0,
        max_km: float | None = None,
        min_stamp: float = -inf,
    ) -> list[Found]:
        """The points nearest to (lat, lon): every point within `tie_km` of the nearest one
        and no farther than `max_km`, as (km, id) sorted by distance then id. Only points in
        `among` (all when None) with stamp ≥ `min_stamp` count. Empty when none qualifies."""
        if among is not None and len(among) <= max(SCAN_AT_MOST, isqrt(len(self._entries))):
            return self.nearest_scan(lat, lon, among, tie_km, max_km, min_stamp)
        return self.nearest_grid(lat, lon, among, tie_km, max_km, min_stamp)

    def nearest_scan(
        self,
        lat: float,
        lon: float,
        among: Iterable[str],
        tie_km: float = 0.0,
        max_km: float | None = None,
        min_stamp: float = -inf,
    ) -> list[Found]:
        """`nearest` by measuring every point of `among`."""
        check_point(lat, lon)
        la, lo, cq = radians(lat), radians(lon), cos(radians(lat))
        limit = inf if max_km is None else max_km
        found: list[Found] = []
        for pid in among:
            e = self._entries.get(pid)
            if e is None or e[4] < min_stamp:
                continue
            d = _distance(la, lo, cq, e[1], e[2], e[3])
            if d <= limit:
                found.append((d, pid))
        return _within_tie(found, tie_km, limit)

    def nearest_grid(
        self,
        lat: float,
        lon: float,
        among: Collection[str] | None = None,
        tie_km: float = 0.0,
        max_km: float | None = None,
        min_stamp: float = -inf,
    ) -> list[Found]:
        """`nearest` by walking the grid outward from the query's cell (see the module doc).

        Heap items are (bound h, band, east, west, left, lat part, lon factor, east next).
        A band waiting to join has band = -1, `east` = its index in self._bands and `west`
        the direction (+1 north, -1 south) of the band to queue after it. A joined band has
        cursors `east`/`west` into its sorted columns and `left` columns unvisited between
        them; its bound is lat part + lon factor · sin²(gap/2) for the nearer cursor's gap.
        The loop is written out inline: it is the hot path of `nearest` routing.
        """
        check_point(lat, lon)
        cell, ncols, cells, colmap, bands = (
            self._cell,
            self._ncols,
            self._cells,
            self._cols,
            self._bands,
        )
        qb = min(self._nbands - 1, int((lat + 90) / cell))
        wrapped = (lon + 180) % 360
        qc = min(ncols - 1, int(wrapped / cell))
        # The query's offsets inside its own cell, clamped so rounding never makes a gap < 0.
        flat = min(cell, max(0.0, lat + 90 - qb * cell))
        flon = min(cell, max(0.0, wrapped - qc * cell))
        la, lo = radians(lat), radians(lon)
        cq = cos(la)
        limit = inf if max_km is None else max_km
        cutoff, best = limit, inf
        stop = _h_of(cutoff) * (1 + _REL_SLACK) + _ABS_SLACK
        found: list[Found] = []

        def lat_part(band: int) -> float:
            gap = (band - qb) * cell - flat if band > qb else (qb - band - 1) * cell + flat
            return sin(radians(max(0.0, gap)) / 2) ** 2 if band != qb else 0.0

        def east_gap(col: int) -> float:
            k = (col - qc) % ncols
            return 0.0 if k == 0 else min(180.0, k * cell - flon)

        def west_gap(col: int) -> float:
            k = (qc - col) % ncols
            return 0.0 if k == 0 else min(180.0, (k - 1) * cell + flon)

        def item(band: int, e: int, w: int, left: int, s2: float, cm: float) -> _Item:
            cols = colmap[band]
            ge, gw = east_gap(cols[e]), west_gap(cols[w])
            t = sin(radians(min(ge, gw)) / 2)
            return (s2 + cm * t * t, band, e, w, left, s2, cm, ge <= gw)

        heap: list[_Item] = []
        i = bisect_left(bands, qb)
        for idx, step in ((i, 1), (i - 1, -1)):
            if 0 <= idx < len(bands):
                heap.append((lat_part(bands[idx]), -1, idx, step, 0, 0.0, 0.0, False))
        heapify(heap)
        while heap:
            key, band, e, w, left, s2, cm, east = heappop(heap)
            if key > stop:
                break  # every cell still waiting is at least this far
            if band < 0:  # a band joins: its columns enter, and the next band waits
                idx, step = e, w
                band = bands[idx]
                n = len(colmap[band])
                e = bisect_left(colmap[band], qc) % n  # first column at or east of the query
                s2 = lat_part(band)
                heappush(heap, item(band, e, (e - 1) % n, n, s2, cq * self._mincos[band]))
                if 0 <= idx + step < len(bands):
                    nxt = bands[idx + step]
                    heappush(heap, (lat_part(nxt), -1, idx + step, step, 0, 0.0, 0.0, False))
                continue
            cols = colmap[band]
            if east:
                col, e = cols[e], (e + 1) % len(cols)
            else:
                col, w = cols[w], (w - 1) % len(cols)
            for entry in cells[band * ncols + col]:
                if entry[4] < min_stamp or (among is not None and entry[0] not in among):
                    continue
                s = sin((entry[1] - la) / 2)
                t = sin((entry[2] - lo) / 2)
                h = s * s + cq * entry[3] * t * t
                if h > stop:
                    continue
                d = 2 * EARTH_RADIUS_KM * asin(sqrt(min(1.0, h)))
                if d <= cutoff:
                    found.append((d, entry[0]))
                    if d < best:
                        best = d
                        cutoff = min(limit, best + tie_km)
                        stop = _h_of(cutoff) * (1 + _REL_SLACK) + _ABS_SLACK
            if left > 1:
                heappush(heap, item(band, e, w, left - 1, s2, cm))
        return _within_tie(found, tie_km, limit)


def _within_tie(found: list[Found], tie_km: float, limit: float) -> list[Found]:
    if not found:
        return []
    best = min(found)[0]
    cutoff = min(limit, best + tie_km)
    return sorted(f for f in found if f[0] <= cutoff)
