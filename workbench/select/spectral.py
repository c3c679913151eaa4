"""Spectral selection: embed the unit-similarity graph, cluster into k groups, keep one medoid per cluster."""

from __future__ import annotations

import warnings

import numpy as np

from workbench.errors import SelectionError
from workbench.select.base import Selector, register_selector
from workbench.select.graphs import NONNEGATIVE, nonnegative
from workbench.select.grouping import centrality, fill_to_budget, medoids, relabel
from workbench.select.validation import check_finite, check_symmetric
from workbench.unitview import UnitView
from workbench.utils import RandomState, seed_from

EMBEDDINGS = ("ase", "lse", "omnibus")
CLUSTERINGS = ("kmeans", "gmm")
MEDOIDS = ("similarity", "centroid")


@register_selector(
    "spectral", description="spectral embedding (ASE / LSE / omnibus) + k-means or GMM, one medoid per cluster"
)
class SpectralSelector(Selector):
    """Spectral embedding of the weighted similarity graph, clustered into k = budget clusters.

    The similarity becomes a weighted graph without self-loops whose weights are made non-negative
    (``nonnegative="clip"``: negative similarities set to 0; ``"shift"``: the smallest off-diagonal
    similarity subtracted). It is embedded with graspologic's ``AdjacencySpectralEmbed``
    (``embedding="ase"``), ``LaplacianSpectralEmbed`` (``"lse"``, regularized form ``R-DAD``), or
    ``OmnibusEmbed`` (``"omnibus"``) of several graphs of the same units given as
    ``view.meta["graphs"]`` (a list of n x n similarity matrices from different sources; the omnibus
    latent positions of the graphs are averaged). ``n_components=None`` lets graspologic pick the
    dimension (profile-likelihood elbow).

    The embedding is clustered into k clusters by k-means (``clustering="kmeans"``) or a Gaussian
    mixture (``"gmm"``, full covariances); each cluster keeps its medoid: the member with the highest
    summed similarity to its cluster (``medoid="similarity"``) or the member nearest the cluster mean
    in the embedding (``"centroid"``). If fewer than k non-empty clusters come out (duplicate points,
    empty components), the budget is filled by repeatedly keeping the unit least similar to its
    closest kept unit. Dropped units go to the most similar kept unit of their cluster.

    Fitted attributes: ``embedding_`` (n x d), ``labels_`` (cluster per unit), ``scores_`` (mean
    similarity to the own cluster).
    """

    def __init__(
        self,
        budget: int | float = 0.5,
        embedding: str = "ase",
        n_components: int | None = None,
        clustering: str = "kmeans",
        medoid: str = "similarity",
        nonnegative: str = "clip",
        random_state: RandomState = None,
    ) -> None:
        super().__init__(budget, random_state)
        self.embedding = embedding
        self.n_components = n_components
        self.clustering = clustering
        self.medoid = medoid
        self.nonnegative = nonnegative

    def _check_params(self) -> None:
        self._choice("embedding", EMBEDDINGS)
        self._count("n_components", optional=True)
        self._choice("clustering", CLUSTERINGS)
        self._choice("medoid", MEDOIDS)
        self._choice("nonnegative", NONNEGATIVE)

    def _graphs(self, view: UnitView) -> list[np.ndarray]:
        graphs = view.meta.get("graphs")
        n = view.n_units
        if not isinstance(graphs, (list, tuple)) or len(graphs) < 2:
            raise SelectionError(
                "selector 'spectral' with embedding='omnibus' needs view.meta['graphs']: a list of at least two "
                f"({n}, {n}) similarity matrices of the same units (e.g. from weights and from activations)."
            )
        checked = []
        for i, graph in enumerate(graphs):
            graph = check_finite(graph, f"meta['graphs'][{i}]", view.group)
            if graph.shape != (n, n):
                raise SelectionError(f"view.meta['graphs'][{i}] has shape {graph.shape}, expected ({n}, {n}).")
            checked.append(nonnegative(check_symmetric(graph, view.group), self.nonnegative))
        return checked

    def _embed(self, view: UnitView, sim: np.ndarray, seed: int) -> np.ndarray:
        from graspologic.embed import AdjacencySpectralEmbed, LaplacianSpectralEmbed, OmnibusEmbed

        n = view.n_units
        if self.n_components is not None and not (
            isinstance(self.n_components, (int, np.integer)) and 1 <= self.n_components < n
        ):
            raise SelectionError(
                f"selector 'spectral': n_components must be None or an int in [1, {n - 1}], got {self.n_components!r}."
            )
        options = dict(n_components=self.n_components, svd_seed=seed, check_lcc=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.embedding == "omnibus":
                latent = OmnibusEmbed(**options).fit_transform(self._graphs(view))
                return np.asarray(latent).mean(axis=0)
            weights = nonnegative(sim, self.nonnegative)
            if not np.any(weights):
                raise SelectionError(
                    f"group {view.group!r}: the similarity graph has no positive edge after making it non-negative "
                    f"({self.nonnegative!r}); use nonnegative='shift' or other features."
                )
            if self.embedding == "ase":
                latent = AdjacencySpectralEmbed(**options).fit_transform(weights)
            else:
                latent = LaplacianSpectralEmbed(form="R-DAD", **options).fit_transform(weights)
        return np.asarray(latent)

    def _cluster(self, x: np.ndarray, k: int, seed: int) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.clustering == "kmeans":
                from sklearn.cluster import KMeans

                return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
            from sklearn.mixture import GaussianMixture

            return GaussianMixture(
                n_components=k, covariance_type="full", reg_covar=1e-6, random_state=seed
            ).fit_predict(x)

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        sim = self._kernel(view)
        seed = seed_from(rng)
        if view.n_units < 3:
            raise SelectionError(
                f"selector 'spectral' needs at least 3 units to embed, group {view.group!r} has {view.n_units}."
            )
        self.embedding_ = self._embed(view, sim, seed)
        labels = relabel(self._cluster(self.embedding_, k, seed))
        if self.medoid == "similarity":
            keep = medoids(sim, labels)
        else:
            keep = []
            for c in np.unique(labels):
                members = np.flatnonzero(labels == c)
                centre = self.embedding_[members].mean(axis=0)
                keep.append(members[int(np.argmin(((self.embedding_[members] - centre) ** 2).sum(axis=1)))])
            keep = np.sort(np.asarray(keep, dtype=int))
        keep = fill_to_budget(sim, keep, k)
        self.labels_ = labels
        return keep, centrality(sim, labels), labels
