"""csal3d.select and csal3d.Sampler: choosing the cases to annotate.

    picks = csal3d.select(features, scores, budget=20)            # URDS, seed 0
    picks = csal3d.select(features, None, 20, strategy="typiclust")
    for p in picks:
        print(p.index, p.cluster, p.cluster_size, p.typicality, p.score, p.rule)
    picks.strategy, picks.seed, picks.n_cand, picks.assignment   # how they were chosen

features: N x d (numpy array or nested sequences; converted to float32, copied by the
library); scores: N values (larger = more uncertain), or None for strategies that do
not need them. csal3d.strategies() lists the strategies the library knows ("urds", the
default, "unc-only", "div-only", the baselines...) with what each needs and reads;
STRATEGIES and RULES are their names and the rules' names, both read from the library.
Options are the C struct's members (csal3d_sampler_options) as keyword arguments, e.g.
kernel="reference", gammas=(0.1, 1, 10), exact_max_n=4096, nystrom_landmarks=512,
probcover_delta=0.5, typiclust_variant="original" (the original TypiClust code's rules;
"paper", the default, is the variant the CSAL-3D paper compared against).
"""

import ctypes
from collections import namedtuple

import numpy as np

from ._native import Owned, check, choice, declare, integer, lib
from .context import Context
from .errors import StateError

_KERNELS = {"mkkm": 0, "reference": 1}
_GAMMA_MODES = {"median": 0, "raw": 1}
_TYPICLUST_VARIANTS = {"paper": 0, "original": 1}
_MAX_KERNELS = 8


class _Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("strategy", ctypes.c_int),
                ("n_cand", ctypes.c_int),
                ("use_seed", ctypes.c_int),
                ("seed", ctypes.c_uint64),
                ("kernel", ctypes.c_int),
                ("gamma_mode", ctypes.c_int),
                ("n_kernels", ctypes.c_int),
                ("gammas", ctypes.c_double * _MAX_KERNELS),
                ("mkkm_tol", ctypes.c_double),
                ("mkkm_max_iter", ctypes.c_int),
                ("reference_eps", ctypes.c_double),
                ("exact_max_n", ctypes.c_int64),
                ("nystrom_landmarks", ctypes.c_int64),
                ("kmeans_restarts", ctypes.c_int),
                ("kmeans_max_iter", ctypes.c_int),
                ("kmeans_tol", ctypes.c_double),
                ("kmeans_batch", ctypes.c_int64),
                ("typiclust_k", ctypes.c_int),
                ("typiclust_min_cluster_size", ctypes.c_int),
                ("probcover_delta", ctypes.c_double),
                ("probcover_purity", ctypes.c_double),
                ("probcover_grid", ctypes.c_int),
                ("probcover_max_edges", ctypes.c_int64),
                ("birch_threshold", ctypes.c_double),
                ("birch_branching", ctypes.c_int),
                ("birch_max_subclusters", ctypes.c_int64),
                ("usl_k", ctypes.c_int),
                ("usl_lambda", ctypes.c_double),
                ("usl_alpha", ctypes.c_double),
                ("usl_iterations", ctypes.c_int),
                ("usl_momentum", ctypes.c_double),
                ("usl_horizon", ctypes.c_int),
                ("typiclust_variant", ctypes.c_int)]


class _Record(ctypes.Structure):
    _fields_ = [("index", ctypes.c_int64),
                ("cluster", ctypes.c_int64),
                ("cluster_size", ctypes.c_int64),
                ("typicality", ctypes.c_double),
                ("score", ctypes.c_double),
                ("rule", ctypes.c_int)]


class _Info(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("strategy", ctypes.c_int),
                ("n", ctypes.c_int64),
                ("d", ctypes.c_int64),
                ("budget", ctypes.c_int64),
                ("n_clusters", ctypes.c_int64),
                ("empty_clusters", ctypes.c_int64),
                ("nystrom", ctypes.c_int),
                ("landmarks", ctypes.c_int64),
                ("n_kernels", ctypes.c_int),
                ("gammas", ctypes.c_double * _MAX_KERNELS),
                ("kernel_weights", ctypes.c_double * _MAX_KERNELS),
                ("mkkm_iterations", ctypes.c_int),
                ("mkkm_objective", ctypes.c_double),
                ("median_sq_distance", ctypes.c_double),
                ("kmeans_inertia", ctypes.c_double),
                ("probcover_delta", ctypes.c_double),
                ("probcover_purity", ctypes.c_double),
                ("probcover_coverage", ctypes.c_double),
                ("birch_threshold", ctypes.c_double),
                ("birch_subclusters", ctypes.c_int64)]


class _StrategyInfo(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("strategy", ctypes.c_int),
                ("name", ctypes.c_char_p),
                ("description", ctypes.c_char_p),
                ("needs_scores", ctypes.c_int),
                ("has_clusters", ctypes.c_int),
                ("has_typicality", ctypes.c_int),
                ("options", ctypes.c_uint)]


_vp = ctypes.c_void_p
for _name, _res, _args in (("csal3d_strategy_count", ctypes.c_int, []),
                           ("csal3d_rule_count", ctypes.c_int, []),
                           ("csal3d_rule_name", ctypes.c_char_p, [ctypes.c_int]),
                           ("csal3d_sampler_option_name", ctypes.c_char_p, [ctypes.c_uint])):
    getattr(lib, _name).restype = _res
    getattr(lib, _name).argtypes = _args
_strategy_get_info = declare("csal3d_strategy_get_info",
                             [ctypes.c_int, ctypes.POINTER(_StrategyInfo)])
_strategy_from_name = declare("csal3d_strategy_from_name",
                              [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)])
_needs_scores = declare("csal3d_sampler_needs_scores", [_vp, ctypes.POINTER(ctypes.c_int)])
_options_init = declare("csal3d_sampler_options_init", [ctypes.POINTER(_Options)])
_create = declare("csal3d_sampler_create",
                  [_vp, ctypes.POINTER(_Options), ctypes.POINTER(_vp)])
_set_features = declare("csal3d_sampler_set_features",
                        [_vp, ctypes.POINTER(ctypes.c_float), ctypes.c_int64, ctypes.c_int64])
_set_scores = declare("csal3d_sampler_set_scores",
                      [_vp, ctypes.POINTER(ctypes.c_float), ctypes.c_int64])
_select = declare("csal3d_sampler_select", [_vp, ctypes.c_int64])
_get_selection = declare("csal3d_sampler_get_selection",
                         [_vp, ctypes.POINTER(_Record), ctypes.c_size_t, ctypes.c_int64,
                          ctypes.POINTER(ctypes.c_int64)])
_get_assignment = declare("csal3d_sampler_get_assignment",
                          [_vp, ctypes.POINTER(ctypes.c_int64), ctypes.c_int64,
                           ctypes.POINTER(ctypes.c_int64)])
_get_info = declare("csal3d_sampler_get_info", [_vp, ctypes.POINTER(_Info)])
lib.csal3d_sampler_free.restype = None
lib.csal3d_sampler_free.argtypes = [_vp]

Selection = namedtuple("Selection", "index cluster cluster_size typicality score rule")
Selection.__doc__ = """One chosen case: its row, its cluster (-1 without clusters), the
cluster's size, the typicality the strategy ranked by (nan where none, inf for a
singleton), its score (nan without scores) and the rule that chose it ("urds",
"refill", "top-score", "most-typical", ...)."""

_OPTION_NAMES = {name for name, _ in _Options._fields_} - {
    "struct_size", "strategy", "use_seed", "seed", "n_kernels"}

StrategyInfo = namedtuple("StrategyInfo",
                          "value name description needs_scores has_clusters has_typicality "
                          "options")
StrategyInfo.__doc__ = """A strategy as the library describes it: its csal3d_strategy value,
name, a one-line description, whether selecting fails without scores (needs_scores;
kernel="reference" also needs them, for the strategies whose options include "kernel":
Sampler.needs_scores answers for given options), whether its picks carry a cluster and a typicality, and the groups of
sampler options it reads ("n_cand", "seed", "kernel", "gamma", "mkkm", "kmeans",
"typiclust", "probcover", "birch", "usl": the option names start so, see
csal3d_sampler_option_name in sampler.h)."""


def _option_groups(mask):
    groups, bit = [], 1
    while bit <= mask:
        if mask & bit:
            name = lib.csal3d_sampler_option_name(bit)
            groups.append(name.decode() if name else hex(bit))
        bit <<= 1
    return tuple(groups)


def strategies():
    """The strategies the library knows, in csal3d_strategy order: a list of
    StrategyInfo (.value, .name, .description, .needs_scores, .has_clusters,
    .has_typicality, .options)."""
    out = []
    for q in range(lib.csal3d_strategy_count()):
        i = _StrategyInfo()
        i.struct_size = ctypes.sizeof(_StrategyInfo)
        check(_strategy_get_info(q, ctypes.byref(i)))
        out.append(StrategyInfo(i.strategy, i.name.decode(), i.description.decode(),
                                bool(i.needs_scores), bool(i.has_clusters),
                                bool(i.has_typicality), _option_groups(i.options)))
    return out


STRATEGIES = tuple(s.name for s in strategies())
RULES = tuple(lib.csal3d_rule_name(r).decode() for r in range(lib.csal3d_rule_count()))


def _strategy_code(strategy):
    """The csal3d_strategy value of a name ("_" for "-", any case); InvalidArgumentError
    (a ValueError) listing the names when unknown."""
    code = ctypes.c_int()
    check(_strategy_from_name(str(strategy).encode(), ctypes.byref(code)))
    return code.value


def _sampler_options(strategy="urds", n_cand=3, seed=None, **options):
    """A csal3d_sampler_options struct from keyword arguments (the struct's members; see
    the module docstring); TypeError for an unknown one."""
    o = _Options()
    check(_options_init(ctypes.byref(o)))
    o.strategy = _strategy_code(strategy)
    o.n_cand = integer("n_cand", n_cand)
    if seed is not None:
        o.use_seed = 1
        o.seed = integer("seed", seed, 0)
    for key, value in options.items():
        if key == "gammas":
            g = [float(v) for v in value]
            if not 1 <= len(g) <= _MAX_KERNELS:
                raise ValueError(f"gammas: 1 to {_MAX_KERNELS} values, not {len(g)}")
            o.n_kernels = len(g)
            for i, v in enumerate(g):
                o.gammas[i] = v
        elif key == "kernel":
            o.kernel = choice("kernel", value, _KERNELS)
        elif key == "gamma_mode":
            o.gamma_mode = choice("gamma_mode", value, _GAMMA_MODES)
        elif key == "typiclust_variant":
            o.typiclust_variant = choice("typiclust_variant", value, _TYPICLUST_VARIANTS)
        elif key in _OPTION_NAMES:
            if isinstance(getattr(o, key), int):
                setattr(o, key, integer(key, value))
            else:
                setattr(o, key, float(value))
        else:
            raise TypeError(f"unknown sampler option {key!r}; known: "
                            f"{', '.join(sorted(_OPTION_NAMES | {'gammas'}))}")
    return o


def _as_features(features):
    x = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    if x.ndim != 2:
        raise ValueError(f"features must be N x d, not of shape {x.shape}")
    return x


def _as_scores(scores, n=None):
    s = np.asarray(scores, dtype=np.float32)
    if s.ndim != 1:
        want = f"({n},)" if n is not None else "(N,)"
        raise ValueError(f"scores must be one value per case, an array of shape {want}, "
                         f"not of shape {s.shape}")
    return np.ascontiguousarray(s)


class Picks(list):
    """What Sampler.select and csal3d.select return: a list of Selection (in the order
    chosen) that also carries how it was made, so that write_manifest records it:
    `strategy` (its name), `seed` (the seed the sampler drew with), `n_cand`, `budget`,
    `assignment` (the cluster of every case, numpy int64, -1 for none; None where the
    library gave none) and `info` (Sampler.info after the selection). A slice or a
    plain list of Selection carries none of these."""

    def __init__(self, records, strategy, seed, n_cand, budget, assignment=None, info=None):
        super().__init__(records)
        self.strategy = strategy
        self.seed = seed
        self.n_cand = n_cand
        self.budget = budget
        self.assignment = assignment
        self.info = info

    def __repr__(self):
        return (f"Picks(strategy={self.strategy!r}, seed={self.seed}, n_cand={self.n_cand}, "
                f"{list.__repr__(self)})")


class Sampler(Owned):
    """A reusable sampler: a strategy and its options, features and scores.

    Sampler(strategy="urds", n_cand=3, seed=None, context=None, threads=0, **options)

    seed: None uses the context's seed; context: a csal3d.Context (a CPU context with
    `threads` threads is made when None). select(budget) returns a list of Selection;
    `assignment` is then the cluster of every case (numpy int64, -1 for none) and
    `info` a dict of what the selection did (kernel weights, delta, ...).
    """

    _FREE = "csal3d_sampler_free"
    _WHAT = "the sampler"

    def __init__(self, strategy="urds", n_cand=3, seed=None, context=None, threads=0,
                 **options):
        o = _sampler_options(strategy, n_cand, seed, **options)
        self._own_context = context is None
        self._context = context if context is not None else Context(device="cpu",
                                                                    threads=threads)
        handle = _vp()
        check(_create(self._context.handle, ctypes.byref(o), ctypes.byref(handle)))
        self._handle = handle
        self._hold(self._context)
        self.strategy = STRATEGIES[o.strategy]
        self.n_cand = o.n_cand
        self.seed = o.seed if o.use_seed else self._context.seed
        self._n = None

    def close(self):
        """Releases the sampler (and the context it made for itself, if it did)."""
        super().close()
        if getattr(self, "_own_context", False):
            self._context.close()

    @property
    def needs_scores(self):
        """Whether select() needs scores with this strategy and these options."""
        needs = ctypes.c_int()
        check(_needs_scores(self.handle, ctypes.byref(needs)))
        return bool(needs.value)

    def set_features(self, features):
        """Gives the N x d features (copied)."""
        x = _as_features(features)
        check(_set_features(self.handle, x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                            x.shape[0], x.shape[1]))
        self._n = x.shape[0]

    def set_scores(self, scores):
        """Gives the N uncertainty scores (copied)."""
        s = _as_scores(scores, self._n)
        check(_set_scores(self.handle, s.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                          s.shape[0]))

    def select(self, budget, features=None, scores=None):
        """Chooses `budget` cases (an integer); returns Picks: the list of Selection in the
        order chosen, carrying the strategy, seed, n_cand and cluster assignment."""
        budget = integer("budget", budget, 0)
        if features is not None:
            self.set_features(features)
        if scores is not None:
            self.set_scores(scores)
        check(_select(self.handle, budget))
        count = ctypes.c_int64()
        check(_get_selection(self.handle, None, ctypes.sizeof(_Record), 0,
                             ctypes.byref(count)))
        records = (_Record * count.value)()
        check(_get_selection(self.handle, records, ctypes.sizeof(_Record), count.value,
                             ctypes.byref(count)))
        picks = [Selection(r.index, r.cluster, r.cluster_size, r.typicality, r.score,
                           RULES[r.rule] if 0 <= r.rule < len(RULES) else str(r.rule))
                 for r in records]
        assignment = self.assignment
        if not np.any(assignment >= 0):  # a strategy without clusters
            assignment = None
        return Picks(picks, self.strategy, self.seed, self.n_cand, budget, assignment,
                     self.info)

    @property
    def assignment(self):
        """The cluster of every case after select() (numpy int64; -1 for none)."""
        n = ctypes.c_int64()
        check(_get_assignment(self.handle, None, 0, ctypes.byref(n)))
        out = np.empty(n.value, dtype=np.int64)
        check(_get_assignment(self.handle,
                              out.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
                              n.value, ctypes.byref(n)))
        return out

    @property
    def info(self):
        """What the last selection did, as a dict."""
        i = _Info()
        i.struct_size = ctypes.sizeof(_Info)
        check(_get_info(self.handle, ctypes.byref(i)))
        out = {name: getattr(i, name) for name, _ in _Info._fields_ if name != "struct_size"}
        k = i.n_kernels
        out["gammas"] = list(i.gammas)[:k]
        out["kernel_weights"] = list(i.kernel_weights)[:k]
        out["strategy"] = STRATEGIES[i.strategy]
        out["nystrom"] = bool(i.nystrom)
        return out


def select(features, scores, budget, strategy="urds", n_cand=3, seed=0, threads=0,
           **options):
    """Chooses `budget` (an integer) of the N cases: Picks, a list of Selection (.index,
    .cluster, .cluster_size, .typicality, .score, .rule) in the order the strategy chose
    them, carrying .strategy, .seed, .n_cand and .assignment for write_manifest.

    features: N x d; scores: N values or None where the strategy does not need them
    (csal3d.strategies() says which do; StateError otherwise); seed: the seed of every
    random draw; options: csal3d_sampler_options members.
    """
    budget = integer("budget", budget, 0)
    with Sampler(strategy, n_cand=n_cand, seed=seed, threads=threads, **options) as s:
        if scores is None and s.needs_scores:
            always = strategies()[STRATEGIES.index(s.strategy)].needs_scores
            raise StateError(f"select: strategy {s.strategy!r} needs scores"
                             f"{'' if always else ' with these options'} (N values, larger "
                             "= more uncertain); pass them as `scores`")
        s.set_features(features)
        if scores is not None:
            s.set_scores(scores)
        return s.select(budget)
