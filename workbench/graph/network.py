"""``NetworkGraph``: layers, edges and coupled prunable groups of a traced network."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components
from torch import fx, nn

from workbench.adapters import adapter_for
from workbench.errors import GraphError, closest
from workbench.graph import kinds as K
from workbench.graph.cutting import cut_problem, tied_parameters
from workbench.graph.flow import FlowResult, Layer, Layout, analyse
from workbench.graph.trace import check_finite_parameters, propagate_shapes, trace_model
from workbench.graph.views import MAX_VIEW_MEMORY
from workbench.utils import example_batch

if TYPE_CHECKING:
    import networkx as nx

    from workbench.unitview import UnitView


@dataclass
class Consumer:
    """A layer reading the units of a group.

    ``index[j]`` is the group unit that feeds input column / channel ``j`` of ``layer`` (``-1`` where that
    column carries another group's units or a constant). A conv unit flattened into a Linear feeds a
    contiguous block of ``H*W`` columns; a unit concatenated at offset ``o`` feeds column ``o + i``.
    """

    layer: str
    index: np.ndarray

    def columns(self, unit: int) -> np.ndarray:
        """Input columns of the consumer fed by ``unit``."""
        return np.flatnonzero(self.index == unit)

    def column_matrix(self, n_units: int) -> np.ndarray:
        """(n_units, m) columns of each unit, padded with -1 where a unit feeds fewer than m columns."""
        cols = np.flatnonzero(self.index >= 0)
        units = self.index[cols]
        order = np.argsort(units, kind="stable")
        cols, units = cols[order], units[order]
        counts = np.bincount(units, minlength=n_units)
        m = int(counts.max()) if counts.size else 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out = np.full((n_units, m), -1, dtype=np.int64)
        out[units, np.arange(len(units)) - starts[units]] = cols
        return out


@dataclass
class Group:
    """Layers whose output units are chosen together (a prunable group).

    Attributes
    ----------
    name
        Name of the first layer (in network order) that carries every unit of the group; unit ``i`` is its
        channel / feature ``i``. (Groups without such a layer are named after their first layer.)
    layers
        Layers owning the group's units, in network order (producers, their BatchNorm / PReLU, residual
        partners, depthwise convolutions).
    consumers
        Layers reading the units, with their column mapping.
    n_units
        Number of units (classes of coupled channels).
    prunable
        False when every unit is fixed (the network's output layer, or units feeding opaque layers).
    fixed
        (n_units,) True for units that must stay: reaching the network output, tied to the network input,
        or flowing into something the graph does not understand.
    unit_maps
        Layer name -> (layer units,) index of the group unit each of the layer's units belongs to.
    reasons
        Distinct reasons for fixed units.
    blocks
        Equal-count constraints: each (n_units,) array labels the units of one grouped layer's blocks
        (-1 where the layer does not reach); a rebuilt layer keeps the same number of units in every block
        (grouped convolutions, attention heads).

    Notes
    -----
    Units are classes of channels tied together (by a residual add, BatchNorm, depthwise conv, ...),
    numbered by the channels of the layer the group is named after. Ties need not be one-to-one between whole
    layers: a residual branch added to zero-padded channels (ENet, option-A ResNets) ties only the padded
    part, so a layer may cover a subset of the group's units (see ``unit_maps``). Network-input channels
    tied into a group (ENet's initial concatenation) are fixed units of that group, and the layer reading
    the input is then listed among its consumers.
    """

    name: str
    layers: list[str]
    consumers: list[Consumer]
    n_units: int
    prunable: bool
    fixed: np.ndarray
    unit_maps: dict[str, np.ndarray]
    reasons: list[str] = field(default_factory=list)
    blocks: list[np.ndarray] = field(default_factory=list)

    def cover(self) -> list[np.ndarray]:
        """Unit sets of which at least one must stay: each layer's own units and each consumer's inputs
        (a layer or a consumer left with no channel cannot be rebuilt)."""
        sets = [np.unique(np.asarray(m)) for m in self.unit_maps.values()]
        sets += [np.unique(c.index[c.index >= 0]) for c in self.consumers]
        return [s for s in sets if 0 < len(s) < self.n_units]


def is_leaf(module: nn.Module, name: str) -> bool:
    """Tracing stops at layers with an adapter (their channel behaviour is known) and at torch.nn's own."""
    return adapter_for(module) is not None or fx.Tracer().is_leaf_module(module, name)


def _as_graph_module(model: nn.Module, example_input: torch.Tensor) -> fx.GraphModule:
    """``model`` itself when it is a GraphModule, else its trace (fx, fx with keyword defaults bound, or the
    graph executed on ``example_input``; :func:`workbench.graph.trace.trace_model`)."""
    if isinstance(model, fx.GraphModule):
        return model
    return trace_model(model, example_input, is_leaf=is_leaf)


def from_model(model: nn.Module, example_input: torch.Tensor | None = None) -> NetworkGraph:
    """Trace ``model`` (torch.fx, fx with defaulted forward arguments bound, or the graph it executes on
    ``example_input``: :func:`workbench.graph.trace.trace_model`) and build its :class:`NetworkGraph`.

    Parameters
    ----------
    model
        Any traceable ``nn.Module``.
    example_input
        A batch of the model's input (shapes are propagated through it), on the model's device. Defaults to a
        random batch of the model's ``input_shape`` attribute, when it has one.

    Raises
    ------
    GraphError
        Untraceable forward (names the submodule and the fx error), input of the wrong shape (names the
        expected shape and the failing layer), NaN / infinite weights (names the parameter).
    """
    if not isinstance(model, nn.Module):
        raise GraphError(f"from_model needs a torch.nn.Module, got {type(model).__name__}.")
    check_finite_parameters(model)
    if example_input is None:
        if getattr(model, "input_shape", None) is None:
            raise GraphError(
                f"{type(model).__name__} has no input_shape attribute; pass example_input (a batch of its input)."
            )
        example_input = example_batch(model, batch_size=2)
    gm = _as_graph_module(model, example_input)
    propagate_shapes(gm, model, example_input)
    flow = analyse(gm)
    if getattr(gm, "meta", {}).get("tracer") == "dynamic":
        flow.warnings.insert(
            0,
            f"{type(model).__name__}'s forward has Python control flow torch.fx cannot trace; the graph is the one "
            f"it executed on the example input of shape {tuple(example_input.shape)} (branches taken for that input).",
        )
    for message in flow.warnings:
        warnings.warn(message, stacklevel=2)
    return NetworkGraph(model, gm, flow, tuple(example_input.shape[1:]), example_input)


class NetworkGraph:
    """Layers, edges and prunable groups of a traced network (build it with :func:`from_model`).

    Attributes
    ----------
    layers
        Ordered name -> :class:`Layer` for every traced layer and parameter-free operation.
    edges
        (A, B) pairs of unit-owning layers (and ``"input"``): B reads A's units through parameter-free ops.
    groups
        Ordered name -> :class:`Group`.
    opaque
        Layers with parameters the graph does not understand (their inputs are fixed, a warning is issued).
    unit_index
        Block name (``"input"`` or a group name) -> slice of the unit-graph nodes (see :meth:`unit_adjacency`).
    example_input
        The batch the graph was traced on (surgery reruns the model on it).
    """

    def __init__(
        self,
        model: nn.Module,
        gm: fx.GraphModule,
        flow: FlowResult,
        input_shape: tuple[int, ...],
        example_input: torch.Tensor | None = None,
    ) -> None:
        self.model = model
        self.module = gm
        self.input_shape = input_shape
        self.example_input = example_input
        self.layers: dict[str, Layer] = flow.layers
        self.opaque: list[str] = list(flow.opaque)
        self.warnings: list[str] = list(flow.warnings)
        self._flow = flow
        self._modules = dict(gm.named_modules())
        self._build(flow)

    # -- construction ---------------------------------------------------------------------------------
    def _build(self, flow: FlowResult) -> None:
        n = flow.n_ids
        a, b = flow.pairs
        tie = sp.coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
        n_comp, comp = connected_components(tie, directed=False)
        self._comp = comp
        owner = np.full(n, -1, dtype=np.int64)
        owner_names = list(flow.unit_ranges)
        for k, (start, stop) in enumerate(flow.unit_ranges.values()):
            owner[start:stop] = k
        self._owner, self._owner_names = owner, owner_names
        input_layers = [name for name in owner_names if self.layers[name].kind == "input"]
        unit_layers = [name for name in owner_names if self.layers[name].kind in K.UNIT_KINDS]

        # layers sharing any component form one group (bipartite layer-component graph)
        rows, cols = [], []
        for k, name in enumerate(unit_layers):
            start, stop = flow.unit_ranges[name]
            c = np.unique(comp[start:stop])
            rows.append(np.full(len(c), k))
            cols.append(c)
        nl = len(unit_layers)
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) + nl if cols else np.zeros(0, dtype=np.int64)
        bip = sp.coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(nl + n_comp, nl + n_comp))
        _, layer_label = connected_components(bip, directed=False)

        fixed_ids = np.fromiter(flow.fixed.keys(), dtype=np.int64, count=len(flow.fixed))
        fixed_comp: dict[int, str] = {}
        for i, why in zip(fixed_ids, flow.fixed.values()):
            fixed_comp.setdefault(int(comp[i]), why)
        for name in input_layers:
            start, stop = flow.unit_ranges[name]
            for cc in np.unique(comp[start:stop]):
                fixed_comp.setdefault(int(cc), "tied to the network input")
        for counted, carried, why in flow.size_checks:  # a size read from some units shaping others
            a, b = comp[counted[counted >= 0]], comp[carried[carried >= 0]]
            if set(a.tolist()) != set(b.tolist()) or (carried < 0).any():
                for cc in np.unique(np.concatenate([a, b])):
                    fixed_comp.setdefault(int(cc), f"{why} of other units")

        group_of_comp = np.full(n_comp, -1, dtype=np.int64)
        local_of_comp = np.full(n_comp, -1, dtype=np.int64)
        members: dict[int, list[str]] = {}
        for k, name in enumerate(unit_layers):
            members.setdefault(int(layer_label[k]), []).append(name)
        self.groups: dict[str, Group] = {}
        for g, names in enumerate(members.values()):
            ids = np.concatenate([np.arange(*flow.unit_ranges[nm]) for nm in names])
            comps, first = np.unique(comp[ids], return_index=True)
            comps = comps[np.argsort(first)]
            # name and number the units after the first layer that carries all of them (if any), so that
            # unit i is channel i of the layer the group is named after
            root = names[0]
            for nm in names:
                own = comp[np.arange(*flow.unit_ranges[nm])]
                if len(own) == len(comps) and len(np.unique(own)) == len(comps):
                    root, comps = nm, own
                    break
            group_of_comp[comps] = g
            local_of_comp[comps] = np.arange(len(comps))
            fixed = np.array([int(cc) in fixed_comp for cc in comps], dtype=bool)
            reasons = sorted({fixed_comp[int(cc)] for cc in comps if int(cc) in fixed_comp})
            unit_maps = {nm: local_of_comp[comp[np.arange(*flow.unit_ranges[nm])]] for nm in names}
            group = Group(
                name=root,
                layers=names,
                consumers=[],
                n_units=len(comps),
                prunable=not bool(fixed.all()),
                fixed=fixed,
                unit_maps=unit_maps,
                reasons=reasons,
            )
            self.groups[group.name] = group
            for nm in names:
                self.layers[nm].group = group.name
        group_list = list(self.groups.values())
        self._group_of_comp, self._local_of_comp = group_of_comp, local_of_comp

        # unit-graph nodes: input-only components first, then each group's units
        input_ids = (
            np.concatenate([np.arange(*flow.unit_ranges[nm]) for nm in input_layers])
            if input_layers
            else np.zeros(0, dtype=np.int64)
        )
        input_comps = comp[input_ids]
        input_comps = input_comps[group_of_comp[input_comps] < 0]
        input_comps = input_comps[np.sort(np.unique(input_comps, return_index=True)[1])]
        node_of_comp = np.full(n_comp, -1, dtype=np.int64)
        node_of_comp[input_comps] = np.arange(len(input_comps))
        self.unit_index: dict[str, slice] = {"input": slice(0, len(input_comps))}
        offset = len(input_comps)
        for g, group in enumerate(group_list):
            sel = group_of_comp == g
            node_of_comp[sel] = offset + local_of_comp[sel]
            self.unit_index[group.name] = slice(offset, offset + group.n_units)
            offset += group.n_units
        self.n_nodes = offset
        self._node_of_comp = node_of_comp

        # consumers and edges
        edges: dict[tuple[str, str], None] = {}
        for read in flow.reads:
            valid = read.ids >= 0
            for owner_k in np.unique(owner[read.ids[valid]]):
                edges[(owner_names[owner_k], read.layer)] = None
            if read.coupled:
                continue
            gids = np.full(len(read.ids), -1, dtype=np.int64)
            gids[valid] = group_of_comp[comp[read.ids[valid]]]
            for g in np.unique(gids[gids >= 0]):
                if any(c.layer == read.layer for c in group_list[g].consumers):
                    continue  # a layer called twice reads the same (tied) units through the same weights
                index = np.full(len(read.ids), -1, dtype=np.int64)
                sel = gids == g
                index[sel] = local_of_comp[comp[read.ids[sel]]]
                group_list[g].consumers.append(Consumer(read.layer, index))
        self.edges: list[tuple[str, str]] = list(edges)
        self._add_blocks(flow, comp, group_list)
        modules, parameters = dict(self.model.named_modules()), dict(self.model.named_parameters())
        tied = tied_parameters(self.model)
        for group in group_list:  # groups surgery cannot cut are not offered
            problem = cut_problem(self.model, group, modules, parameters, tied) if group.prunable else None
            if problem:
                group.fixed[:] = True
                group.prunable = False
                group.reasons.append(f"surgery cannot cut it: {problem}")

    def _add_blocks(self, flow: FlowResult, comp: np.ndarray, group_list: list[Group]) -> None:
        """Equal-count constraints of grouped layers, as labels of their groups' units (see ``Group.blocks``).

        Blocks that span several groups, constants or untracked channels, or that disagree on a unit, fix the
        units they cover (no rebuild could keep them balanced)."""
        for ids, labels, layer in flow.blocks:
            valid = ids >= 0
            comps = comp[ids[valid]]
            owners = np.unique(self._group_of_comp[comps])
            ok = valid.all() and len(owners) == 1 and owners[0] >= 0
            if ok:
                local = self._local_of_comp[comps]
                spread = np.zeros((group_list[owners[0]].n_units, int(labels.max()) + 1), dtype=np.int64)
                np.add.at(spread, (local, labels), 1)
                spread = spread[spread.sum(axis=1) > 0]
                if (spread == spread[:1]).all():
                    continue  # every unit spans the blocks alike (tied across them): any removal stays balanced
                label = np.full(group_list[owners[0]].n_units, -1, dtype=np.int64)
                label[local] = labels
                if np.all(label[local] == labels):
                    group_list[owners[0]].blocks.append(label)
                    continue
            for g in owners[owners >= 0]:
                group = group_list[g]
                mine = self._group_of_comp[comps] == g
                group.fixed[self._local_of_comp[comps[mine]]] = True
                why = f"read in blocks by {layer!r} across several groups"
                if why not in group.reasons:
                    group.reasons.append(why)
                group.prunable = not bool(group.fixed.all())

    # -- queries --------------------------------------------------------------------------------------
    def prunable_groups(self) -> list[Group]:
        """Groups with at least one removable unit, in network order."""
        return [g for g in self.groups.values() if g.prunable]

    def group(self, name: str) -> Group:
        """The group called ``name``; a layer name also finds the group of that layer."""
        if name in self.groups:
            return self.groups[name]
        layer = self.layers.get(name)
        if layer is not None and layer.group is not None:
            return self.groups[layer.group]
        raise GraphError(
            f"no prunable group or unit-owning layer named {name!r}.{closest(name, list(self.groups) + list(self.layers))} "
            f"Groups: {', '.join(self.groups)}."
        )

    def module_of(self, layer: str) -> nn.Module:
        """The ``nn.Module`` of a layer."""
        try:
            return self._modules[layer]
        except KeyError:
            raise GraphError(f"layer {layer!r} is not a module.{closest(layer, self._modules)}") from None

    def node_layout(self, node: str) -> Any:
        """Channel layout (:class:`workbench.graph.flow.Layout`) of an fx node's output."""
        return self._flow.node_layouts.get(node)

    def unit_nodes(self, ids: np.ndarray) -> np.ndarray:
        """Unit-graph node of each global unit id (-1 for constants / untracked channels)."""
        ids = np.asarray(ids)
        out = np.full(ids.shape, -1, dtype=np.int64)
        ok = ids >= 0
        out[ok] = self._node_of_comp[self._comp[ids[ok]]]
        return out

    def group_units(self, group: str, ids: np.ndarray) -> np.ndarray:
        """Local unit index in ``group`` of each global unit id (-1 where it belongs elsewhere)."""
        g = list(self.groups).index(self.group(group).name)
        ids = np.asarray(ids)
        out = np.full(ids.shape, -1, dtype=np.int64)
        ok = ids >= 0
        comps = self._comp[ids[ok]]
        out[ok] = np.where(self._group_of_comp[comps] == g, self._local_of_comp[comps], -1)
        return out

    def read_ids(self, layer: str) -> list[np.ndarray]:
        """Unit id of every input column of ``layer``, one array per call of the layer."""
        return [r.ids for r in self._flow.reads if r.layer == layer]

    def layer_units(self, layer: str) -> np.ndarray:
        """Global unit ids of a unit-owning layer."""
        start, stop = self._flow.unit_ranges[layer]
        return np.arange(start, stop)

    @property
    def reads(self) -> list[Any]:
        """Every parametric read (layer, unit id per input column, coupled or not), in network order."""
        return list(self._flow.reads)

    @property
    def tracer(self) -> str:
        """Which tracer built the graph: ``"fx"``, ``"fx-concrete"`` (keyword defaults bound) or ``"dynamic"``."""
        return getattr(self.module, "meta", {}).get("tracer", "fx")

    def __repr__(self) -> str:
        n_param = sum(1 for layer in self.layers.values() if layer.parametric)
        return (
            f"NetworkGraph({type(self.model).__name__}: {len(self.layers)} layers ({n_param} parametric), "
            f"{len(self.edges)} edges, {len(self.groups)} groups ({len(self.prunable_groups())} prunable), "
            f"{self.n_nodes} units)"
        )

    def summary(self) -> str:
        """One line per group: name, units, layers, consumers, prunable."""
        lines = [repr(self)]
        for g in self.groups.values():
            lines.append(
                f"  {g.name}: {g.n_units} units, layers {g.layers}, consumers {[c.layer for c in g.consumers]}"
                f"{'' if g.prunable else ' (not prunable: ' + '; '.join(g.reasons) + ')'}"
            )
        return "\n".join(lines)

    # -- unit graph, views, export (implemented in sibling modules) -----------------------------------
    def unit_adjacency(self, norm: str = "l2") -> sp.csr_matrix:
        """Sparse weighted adjacency of the unit graph; see :func:`workbench.graph.adjacency.unit_adjacency`."""
        from workbench.graph.adjacency import unit_adjacency

        return unit_adjacency(self, norm)

    def unit_table(self) -> dict[str, np.ndarray]:
        """Per unit-graph node: ``block`` (group name or "input"), ``index`` in the block, ``norm`` and ``bias``."""
        from workbench.graph.adjacency import unit_table

        return unit_table(self)

    def unit_view(
        self,
        group: str,
        source: str = "weights",
        data: Any = None,
        metric: str = "cosine",
        max_samples: int = 2048,
        max_positions: int = 64,
        batch_size: int = 256,
        random_state: Any = 0,
        max_memory: int | None = MAX_VIEW_MEMORY,
    ) -> UnitView:
        """Per-unit features of ``group``; see :func:`workbench.graph.views.unit_view`."""
        from workbench.graph.views import unit_view

        return unit_view(
            self,
            group,
            source=source,
            data=data,
            metric=metric,
            max_samples=max_samples,
            max_positions=max_positions,
            batch_size=batch_size,
            random_state=random_state,
            max_memory=max_memory,
        )

    def to_networkx(self, level: str = "layer", norm: str = "l2", max_edges: int = 2_000_000) -> nx.DiGraph:
        """A networkx DiGraph of layers or units; see :func:`workbench.graph.export.to_networkx`."""
        from workbench.graph.export import to_networkx

        return to_networkx(self, level=level, norm=norm, max_edges=max_edges)


__all__ = ["NetworkGraph", "Group", "Consumer", "Layer", "Layout", "from_model"]
