"""The exact assignment behind HM-IoU, as plain Python: compiled by :mod:`._kernels` for batches, run by
the interpreter for a few small images (no compiled code to load for them).

The problem: B images, each with an (N, M) similarity matrix; repeat every row L/N and every column L/M
times (L = lcm(N, M)) and find the permutation of the L × L matrix with the largest sum. It is solved on
the (R, C) matrix itself (R = max(N, M) rows, C = min(N, M) columns), with ``cap = L / C`` slots per
column and ``a = L / R`` units per row, without building the L × L matrix.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["assign_image", "assignment_means", "batch_means"]


def assign_image(cost, a, cap, u, v, col, members, cnt, minv, way, used, vis):
    """Minimum-cost assignment of ``R * a`` row units to ``C`` columns of ``cap`` slots each.

    ``cost`` is (R, C); unit ``r`` is a copy of row ``r // a``. Shortest augmenting paths with
    potentials (the Hungarian method of Kuhn/Munkres in the O(n²m) form of Jonker-Volgenant), on the
    capacitated columns: a column is a node with ``cap`` slots, so a path from a new unit runs through
    full columns and the units they hold until it reaches a column with a free slot. Columns with a
    free slot are never entered by the search and keep potential 0, so the first one reached is the
    end of a shortest path: the result is the optimum of the ``L × L`` duplicated assignment problem
    (``L = R·a = C·cap``). Returns the assigned cost of each unit in ``col`` (its column).
    """
    R, C = cost.shape
    L = R * a
    inf = np.inf
    for j in range(C):
        v[j] = 0.0
        cnt[j] = 0
    for r in range(L):
        u[r] = 0.0
        col[r] = -1
    for r_new in range(L):
        for j in range(C):
            minv[j] = inf
            way[j] = -1
            used[j] = False
        n_vis = 1
        vis[0] = r_new
        row = r_new // a
        for j in range(C):
            minv[j] = cost[row, j] - v[j]  # u[r_new] = 0
            way[j] = r_new
        while True:
            delta = inf
            j1 = -1
            for j in range(C):
                if not used[j] and minv[j] < delta:
                    delta = minv[j]
                    j1 = j
            for k in range(n_vis):
                u[vis[k]] += delta
            for j in range(C):
                if used[j]:
                    v[j] -= delta
                else:
                    minv[j] -= delta
            if cnt[j1] < cap:
                # augment: walk the tree back from the free column to the new unit
                j = j1
                while True:
                    x = way[j]
                    old = col[x]
                    col[x] = j
                    members[j, cnt[j]] = x
                    cnt[j] += 1
                    if x == r_new:
                        break
                    # remove x from its old column (order of members does not matter)
                    for s in range(cnt[old]):
                        if members[old, s] == x:
                            members[old, s] = members[old, cnt[old] - 1]
                            break
                    cnt[old] -= 1
                    j = old
                break
            used[j1] = True
            for s in range(cnt[j1]):
                x = members[j1, s]
                vis[n_vis] = x
                n_vis += 1
                rx = x // a
                for j in range(C):
                    if not used[j]:
                        cur = cost[rx, j] - u[x] - v[j]
                        if cur < minv[j]:
                            minv[j] = cur
                            way[j] = x


def batch_means(sim: np.ndarray, a: int, cap: int, out: np.ndarray) -> None:
    """``out[b]`` = the best mean of ``sim[b]`` (B, R, C) over the duplicated assignment problem.

    Run by the interpreter, and compiled by :mod:`._kernels` as ``assignment_kernel`` (which is why it is
    defined here, next to :func:`assign_image`: see the note there)."""
    B, R, C = sim.shape
    L = R * a
    u, v, minv = np.empty(L), np.empty(C), np.empty(C)
    col, vis = np.empty(L, dtype=np.int64), np.empty(L, dtype=np.int64)
    members = np.empty((C, cap), dtype=np.int64)
    cnt, way = np.empty(C, dtype=np.int64), np.empty(C, dtype=np.int64)
    used = np.empty(C, dtype=np.bool_)
    for b in range(B):
        assign_image(-sim[b], a, cap, u, v, col, members, cnt, minv, way, used, vis)
        total = 0.0
        for r in range(L):
            total += sim[b, r // a, col[r]]
        out[b] = total / L


def assignment_means(sim: np.ndarray, compiled: bool = True) -> np.ndarray:
    """Best mean similarity of a one-to-one matching after duplicating both sets to ``lcm(N, M)``.

    Parameters
    ----------
    sim : ndarray of float64, shape (B, N, M)
        Finite similarities (prediction i, annotation j) of B images.
    compiled : bool, default True
        Run the compiled kernel (:func:`._kernels.assignment_kernel`); False runs the same loops in the
        interpreter, for a few small images where loading the kernel costs more than the work.

    Returns
    -------
    ndarray of float64, shape (B,)
        ``max over permutations π of (1/L) Σ_k big[k, π(k)]`` for ``big`` = ``sim[b]`` with every row
        repeated L/N times and every column L/M times: the value of
        ``scipy.optimize.linear_sum_assignment(big, maximize=True)``, exact (O(L²·min(N, M)) per image).
    """
    sim = np.asarray(sim, dtype=np.float64)
    B, N, M = sim.shape
    if N < M:  # rows: the larger side; columns (with L / C slots each): the smaller one
        sim = sim.transpose(0, 2, 1)
        N, M = M, N
    L = math.lcm(N, M)
    out = np.empty(B)
    if B == 0:
        return out
    sim = np.ascontiguousarray(sim)
    if compiled:
        from . import _kernels

        _kernels.assignment_kernel(sim, L // N, L // M, out)
    else:
        batch_means(sim, L // N, L // M, out)
    return out
