"""Layout algorithms of the model views: layered graphs and trees, in NumPy.

- :func:`layered_layout`: a directed graph top to bottom (the network view,
  :mod:`dlviz_gpu.introspect.graph`): longest-path layering in the nodes'
  execution order, sources that are not inputs pulled down next to their
  first consumer, a few vectorised barycentre sweeps to order each layer,
  then x positions pulled towards the neighbours' and separated by a
  cumulative maximum (a 10,000-node graph in a few tens of milliseconds).
- :func:`tree_layout`: a tree given as parent -> child edges (a module tree):
  leaves in consecutive slots, parents centred over their children.
- :func:`binary_tree_layout`: a binary tree given as children arrays (a
  fitted decision tree, :mod:`dlviz_gpu.estimators`): tidy, folded at
  ``max_depth``, level by level.

Nothing here knows torch, scikit-learn or a plotting library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["layered_layout", "tree_layout", "binary_tree_layout", "TreeLayout", "depth_levels",
           "check_edges", "SWEEPS"]

#: barycentre ordering sweeps of :func:`layered_layout` (each a down and an up pass)
SWEEPS = 8



def check_edges(edges, n: int) -> np.ndarray:
    """``edges`` as a deduplicated (E, 2) int64 array of node indices in [0, n), self-loops
    dropped; a ``ValueError`` naming ``edges`` otherwise."""
    e = np.asarray(edges if edges is not None else np.empty((0, 2)), dtype=np.int64)
    if e.size == 0:
        return np.empty((0, 2), np.int64)
    if e.ndim != 2 or e.shape[1] != 2:
        raise ValueError(f"edges: expected an (E, 2) array of node indices; got shape {e.shape}")
    if e.min() < 0 or e.max() >= n:
        raise ValueError(f"edges: node indices must lie in [0, {n}); got {e.min()}..{e.max()}")
    e = e[e[:, 0] != e[:, 1]]
    return np.unique(e, axis=0) if len(e) else e


def _within_rank(layer: np.ndarray, key: np.ndarray) -> tuple:
    """Order nodes by (layer, key); return (order, rank within layer, layer sizes)."""
    order = np.lexsort((key, layer))
    sizes = np.bincount(layer)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank = np.empty(len(layer), np.int64)
    rank[order] = np.arange(len(layer)) - np.repeat(starts, sizes)
    return order, rank, sizes


def _longest_path_layers(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Layer of each node: 1 + the largest layer of its predecessors (edges go low -> high index).

    Frontier relaxation in NumPy while the graph is wide; a plain loop over
    the nodes in index order (a topological order here) finishes long chains.
    """
    layer = np.zeros(n, np.int64)
    if len(src) == 0:
        return layer
    # a few vectorised relaxations settle short graphs outright
    for _ in range(8):
        new = layer.copy()
        np.maximum.at(new, dst, layer[src] + 1)
        if np.array_equal(new, layer):
            return layer
        layer = new
    order = np.argsort(dst, kind="stable")
    s_sorted = src[order].tolist()
    bounds = np.searchsorted(dst[order], np.arange(n + 1)).tolist()
    lay = [0] * n
    for v in range(n):
        a, b = bounds[v], bounds[v + 1]
        if a < b:
            lay[v] = max(lay[u] for u in s_sorted[a:b]) + 1
    return np.asarray(lay, np.int64)


def _neighbour_mean(values: np.ndarray, a: np.ndarray, b: np.ndarray, n: int, w=None):
    """Weighted mean of ``values[a]`` over the edges into each node ``b``; (mean, has_any)."""
    s = np.bincount(b, weights=values[a] if w is None else values[a] * w, minlength=n)
    c = np.bincount(b, weights=w, minlength=n)
    has = c > 0
    out = np.where(has, s / np.where(has, c, 1.0), 0.0)
    return out, has


def _separate(desired: np.ndarray, layer: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Positions close to ``desired`` that keep each layer's order and are >= 1 apart.

    Within a layer sorted by rank, p_k = max(d_k, p_{k-1} + 1), i.e.
    p_k - k = cummax(d_j - j): one cumulative maximum over all layers at once,
    with a per-layer offset so that no maximum carries across layers.  Each
    layer is then shifted so its mean position equals its mean desire.
    """
    n = len(desired)
    order = np.lexsort((rank, layer))
    d = desired[order]
    k = rank[order].astype(np.float64)
    lay = layer[order]
    span = float(np.abs(d).max()) + n + 1.0
    off = lay * (4.0 * span)
    p = np.maximum.accumulate(d - k + off) - off + k
    nl = int(lay.max()) + 1
    cnt = np.bincount(lay, minlength=nl)
    shift = (np.bincount(lay, weights=d - p, minlength=nl) / np.maximum(cnt, 1))[lay]
    out = np.empty(n)
    out[order] = p + shift
    return out


def layered_layout(n: int, edges, *, sweeps: int = SWEEPS, inputs=None) -> tuple:
    """Top-to-bottom layered layout of a directed graph, in NumPy.

    Parameters
    ----------
    n : int
        Number of nodes; their index order should be a topological order
        (execution order): an edge from a later to an earlier node is laid
        out as if reversed (it closes a cycle).
    edges : (E, 2) array of int
        ``(source, target)``.
    sweeps : int
        Barycentre ordering sweeps (each a down and an up pass).
    inputs : array of bool or int indices, optional
        Nodes that stay in the top layer; any other node without a
        predecessor (a parameter, a constant) is moved down to just above its
        first consumer.  Default: every source stays at the top.

    Returns
    -------
    layer : (N,) int64 array
        0 at the top.
    x : (N,) float64 array
        Horizontal position in slot units (neighbours in a layer >= 1 apart).

    Notes
    -----
    Longest-path layering; the order within each layer starts from the
    index order and is improved by Jacobi-style barycentre sweeps (every
    node moves half-way to the mean position of its neighbours in the
    previous pass, an edge over k layers weighted 1 / k^2, all layers at
    once: one ``bincount`` and one ``lexsort`` per pass; on random
    model-like DAGs 8 sweeps remove about a third of the crossings between
    adjacent layers), then
    x is pulled towards the neighbours' mean and separated by
    :func:`_separate`.  Edges spanning several layers get no dummy nodes:
    they are straight lines, so they may cross nodes.
    """
    e = check_edges(edges, n)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    src = np.minimum(e[:, 0], e[:, 1])
    dst = np.maximum(e[:, 0], e[:, 1])
    layer = _longest_path_layers(n, src, dst)
    # sources that are not inputs: just above their first consumer
    indeg = np.bincount(dst, minlength=n)
    movable = indeg == 0
    if inputs is not None:
        keep = np.zeros(n, bool)
        keep[np.asarray(inputs, dtype=np.int64) if np.asarray(inputs).dtype != bool
             else np.flatnonzero(inputs)] = True
        movable &= ~keep
        if len(src):
            lowest = np.full(n, np.iinfo(np.int64).max)
            np.minimum.at(lowest, src, layer[dst] - 1)
            ok = movable & (lowest < np.iinfo(np.int64).max)
            layer[ok] = np.maximum(lowest[ok], 0)
    # ordering sweeps
    _, rank, sizes = _within_rank(layer, np.arange(n))
    pos = rank - (sizes[layer] - 1) / 2.0
    # an edge over k layers pulls with weight 1 / k^2: long skips matter less than
    # the neighbours next door
    w = 1.0 / np.maximum(layer[dst] - layer[src], 1).astype(np.float64) ** 2
    for _ in range(max(0, int(sweeps))):
        for a, b in ((src, dst), (dst, src)):
            bary, has = _neighbour_mean(pos, a, b, n, w)
            # damped: half-way to the barycentre (all layers move at once, and an
            # undamped simultaneous move oscillates)
            key = np.where(has, 0.5 * (bary + pos), pos)
            _, rank, _ = _within_rank(layer, key + 1e-9 * pos)
            pos = rank - (sizes[layer] - 1) / 2.0
    # x: towards the neighbours, then separated, order kept
    x = pos.astype(np.float64)
    both_a = np.concatenate((src, dst))
    both_b = np.concatenate((dst, src))
    for _ in range(3):
        mean, has = _neighbour_mean(x, both_a, both_b, n)
        desired = np.where(has, 0.5 * (x + mean), x)
        x = _separate(desired, layer, rank)
    x -= (x.max() + x.min()) / 2.0
    return layer, x


def tree_layout(n: int, edges) -> tuple:
    """Top-to-bottom tree layout: leaves in consecutive slots, parents centred over children.

    Parameters
    ----------
    n : int
    edges : (E, 2) array of int
        ``(parent, child)``; nodes in depth-first order (a parent before its
        children); a node without a parent is a root.

    Returns
    -------
    layer : (N,) int64 array
        Depth (0 at the top).
    x : (N,) float64 array
        Slot units.
    """
    e = check_edges(edges, n)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    parent = np.full(n, -1, np.int64)
    parent[e[:, 1]] = e[:, 0]
    par = parent.tolist()
    depth = [0] * n
    for v in range(n):  # parents come first
        if par[v] >= 0:
            depth[v] = depth[par[v]] + 1
    layer = np.asarray(depth, np.int64)
    is_leaf = np.ones(n, bool)
    is_leaf[e[:, 0]] = False
    x = np.zeros(n)
    x[is_leaf] = np.arange(int(is_leaf.sum()), dtype=np.float64)
    # parents at the midpoint of their first and last child, deepest first
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    for d in range(int(layer.max()), 0, -1):
        kids = np.flatnonzero((layer == d) & (parent >= 0))
        np.minimum.at(lo, parent[kids], x[kids])
        np.maximum.at(hi, parent[kids], x[kids])
        ps = np.unique(parent[kids])
        x[ps] = (lo[ps] + hi[ps]) / 2.0
    x -= (x.max() + x.min()) / 2.0
    return layer, x


# --------------------------------------------------------------------------
# binary trees
# --------------------------------------------------------------------------

def depth_levels(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """Depth, parent and the node ids level by level of a binary tree, walking down from
    the root (node 0); ``left`` / ``right`` are the children (-1 at a leaf)."""
    n = left.size
    depth = np.full(n, -1, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    levels = []
    level = np.array([0], dtype=np.int64)
    d = 0
    while level.size:
        depth[level] = d
        levels.append(level)
        inner = level[left[level] >= 0]
        kids_l, kids_r = left[inner], right[inner]
        parent[kids_l] = inner
        parent[kids_r] = inner
        # left child first, then right, in the parents' order: depth-first order per level
        nxt = np.empty(2 * inner.size, dtype=np.int64)
        nxt[0::2], nxt[1::2] = kids_l, kids_r
        level = nxt
        d += 1
        if d > n:
            raise ValueError("estimator: the tree's children arrays contain a cycle")
    return depth, parent, levels


@dataclass
class TreeLayout:
    """Positions of the drawn nodes of a tree.

    Attributes
    ----------
    x, y : (n,) float64
        Position of every node (NaN for nodes hidden by folding); ``y`` is
        the depth (root 0, growing downwards on screen).
    visible : (n,) bool
        Drawn nodes: depth <= ``max_depth``.
    folded : (n,) bool
        Visible inner nodes at ``max_depth``: drawn as one node standing for
        their whole subtree.
    subtree_nodes : (n,) int64
        Nodes in each node's subtree, itself included.
    width : int
        Leaves (and folded nodes) drawn: the layout spans x in [0, width - 1].
    max_depth : int or None
    """

    x: np.ndarray
    y: np.ndarray
    visible: np.ndarray
    folded: np.ndarray
    subtree_nodes: np.ndarray
    width: int
    max_depth: int | None


def binary_tree_layout(left: np.ndarray, right: np.ndarray,
                       max_depth: int | None = None) -> TreeLayout:
    """A tidy layout of a binary tree: leaves one unit apart in depth-first (left-first)
    order, each parent centred over its two children, one row per depth.

    ``left`` and ``right`` are the children of each node (-1 at a leaf; node
    0 is the root), as in scikit-learn's ``tree_``.

    No two drawn nodes overlap, edges never cross, and every subtree occupies
    its own x interval.  Nodes deeper than ``max_depth`` are hidden; inner
    nodes at ``max_depth`` are folded (laid out as leaves).  Vectorised level
    by level: O(n) NumPy work in ``depth`` steps.
    """
    if max_depth is not None:
        if isinstance(max_depth, bool) or not isinstance(max_depth, (int, np.integer)) \
                or max_depth < 0:
            raise ValueError(f"max_depth: expected None or an int >= 0; got {max_depth!r}")
        max_depth = int(max_depth)
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    n = left.size
    # node ids per depth, each level in left-to-right order (the walk from the root)
    depth, _, levels_all = depth_levels(left, right)
    limit = len(levels_all) - 1 if max_depth is None else min(max_depth, len(levels_all) - 1)
    levels = levels_all[:limit + 1]
    visible = depth <= limit
    leaf = left < 0
    folded = visible & ~leaf & (depth == limit)
    drawn_leaf = leaf | folded
    # subtree sizes bottom-up (all nodes), leaf counts bottom-up (drawn tree)
    sub = np.ones(n, dtype=np.int64)
    for lev in reversed(levels_all):
        inner = lev[~leaf[lev]]
        sub[inner] = 1 + sub[left[inner]] + sub[right[inner]]
    nleaves = np.zeros(n, dtype=np.int64)
    for lev in reversed(levels):
        dl = lev[drawn_leaf[lev]]
        nleaves[dl] = 1
        inner = lev[~drawn_leaf[lev]]
        nleaves[inner] = nleaves[left[inner]] + nleaves[right[inner]]
    # offsets top-down: a node's first leaf slot
    off = np.zeros(n, dtype=np.int64)
    for lev in levels:
        inner = lev[~drawn_leaf[lev]]
        off[left[inner]] = off[inner]
        off[right[inner]] = off[inner] + nleaves[left[inner]]
    x = np.full(n, np.nan)
    y = np.where(visible, depth.astype(np.float64), np.nan)
    for lev in reversed(levels):
        dl = lev[drawn_leaf[lev]]
        x[dl] = off[dl]
        inner = lev[~drawn_leaf[lev]]
        x[inner] = 0.5 * (x[left[inner]] + x[right[inner]])
    return TreeLayout(x=x, y=y, visible=visible, folded=folded, subtree_nodes=sub,
                      width=int(nleaves[0]) if n else 0, max_depth=max_depth)
