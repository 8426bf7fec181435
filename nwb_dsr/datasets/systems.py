"""Chaotic systems given as ODEs: a registry, integration on a regular grid, Lyapunov spectra.

Each system is an :class:`ODESystem` (vector field, analytic Jacobian, default parameters, a box
of initial conditions, a time scale) registered in :data:`SYSTEMS` and found by name with
:func:`get_system`. :func:`integrate` samples any of them on a regular grid after a discarded
transient; :func:`lyapunov_spectrum` and :func:`lyapunov_max` compute the Lyapunov exponents by
the QR (Benettin) method on the variational equations. :func:`lorenz63` and :func:`roessler`
are the two historical entry points, now thin uses of the generic code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from scipy.integrate import odeint, solve_ivp

__all__ = ["ODESystem", "SYSTEMS", "get_system", "integrate", "lyapunov_spectrum",
           "lyapunov_max", "LORENZ63_LYAPUNOV_MAX", "lorenz63", "roessler",
           "lorenz_lyapunov_max", "lorenz_lyapunov_spectrum"]

#: Largest Lyapunov exponent of Lorenz-63 at (sigma, rho, beta) = (10, 28, 8/3), per Lorenz time
#: unit (Sprott, *Chaos and Time-Series Analysis*, 2003: 0.9056, 0, -14.5723).
LORENZ63_LYAPUNOV_MAX = 0.9056

_CLASSIC_LORENZ = (10.0, 28.0, 8.0 / 3.0)


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------

def _check_positive(value: float, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}.") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {value!r}.")
    return value


def _check_count(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


# --------------------------------------------------------------------------------------------
# the systems
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ODESystem:
    """An autonomous ODE ``ds/dt = f(s; p)`` with its Jacobian and what is needed to sample it.

    The vector field and the Jacobian take the state with its components along the first axis,
    so the same code serves one state (shape (dim,)) and a batch (shape (dim, n_states)).

    Parameters
    ----------
    name : str
        Registry name (lower case, e.g. ``"lorenz63"``).
    dim : int
        State dimension.
    vector_field : callable
        ``vector_field(s, p)`` -> list of ``dim`` components of ds/dt; ``s`` unpacks into
        ``dim`` components (floats or arrays), ``p`` is the tuple of parameter values in the
        order of ``parameters``.
    jacobian : callable
        ``jacobian(s, p)`` -> ``dim`` lists of ``dim`` entries (floats or arrays),
        ``J[i][j] = d f_i / d s_j``.
    parameters : mapping of str to float
        Default parameter values, in the order ``vector_field`` unpacks them (may be empty).
    x0_low, x0_high : tuple of float
        Box (length ``dim`` each) from which initial conditions are drawn uniformly; from there
        ``transient`` time units reach the attractor.
    transient : float
        System time units integrated and discarded before sampling.
    time_scale : float
        Default number of system time units per second of a simulated recording, chosen so that
        the predictability time ln 2 / (lambda_max * time_scale) is of order one second.
    lyapunov_reference : float or None
        Literature value of the largest Lyapunov exponent at the default parameters, per system
        time unit (None where there is none).
    lyapunov_dt : float
        RK4 step of :func:`lyapunov_spectrum` in system time units.
    lyapunov_t_max : float
        Default averaging time per trajectory of :func:`lyapunov_spectrum`, in system time
        units.
    lyapunov_trajectories : int
        Default number of trajectories of :func:`lyapunov_spectrum`.
    description : str
        The equations and a reference, in words.

    Examples
    --------
    >>> from nwb_dsr.datasets import get_system
    >>> lorenz = get_system("lorenz63")
    >>> lorenz.dim, dict(lorenz.parameters)["rho"], lorenz.lyapunov_reference
    (3, 28.0, 0.9056)
    >>> [round(v, 1) for v in lorenz.vector_field([1.0, 1.0, 1.0], lorenz.values())]
    [0.0, 26.0, -1.7]
    """

    name: str
    dim: int
    vector_field: Callable
    jacobian: Callable
    parameters: Mapping[str, float]
    x0_low: tuple
    x0_high: tuple
    transient: float
    time_scale: float
    lyapunov_reference: float | None = None
    lyapunov_dt: float = 0.01
    lyapunov_t_max: float = 50.0
    lyapunov_trajectories: int = 64
    description: str = ""

    def values(self, params: Mapping[str, float] | None = None) -> tuple:
        """Parameter values in order: the defaults, overridden by ``params``.

        Parameters
        ----------
        params : mapping of str to float, optional
            Parameters to change; every key must be one of ``parameters``.

        Returns
        -------
        tuple of float

        Raises
        ------
        ValueError
            If a key is not a parameter of this system or a value is not finite.
        """
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            raise ValueError(f"{unknown} are not parameters of {self.name}; its parameters are "
                             f"{list(self.parameters) or 'none'}.")
        out = []
        for key, default in self.parameters.items():
            value = float(params.get(key, default))
            if not np.isfinite(value):
                raise ValueError(f"Parameter {key} of {self.name} must be finite; got "
                                 f"{params[key]!r}.")
            out.append(value)
        return tuple(out)

    def is_default(self, params: Mapping[str, float] | None = None) -> bool:
        """Whether ``params`` leave every parameter at its default value."""
        return self.values(params) == tuple(float(v) for v in self.parameters.values())

    def functions(self, params: Mapping[str, float] | None = None) -> tuple[Callable, Callable]:
        """``(f(s, t), jac(s, t))`` for one state at the given parameters (odeint's signature)."""
        p = self.values(params)
        field_, jac_ = self.vector_field, self.jacobian

        def f(s, t=0.0):
            return field_(s, p)

        def jac(s, t=0.0):
            return jac_(s, p)

        return f, jac

    def batch_functions(self, params: Mapping[str, float] | None = None):
        """Vectorised ``(f(x), jac(x))`` for states ``x`` of shape (n, dim).

        ``f`` returns (n, dim) and ``jac`` (n, dim, dim).
        """
        p = self.values(params)
        dim, field_, jac_ = self.dim, self.vector_field, self.jacobian

        def f(x):
            return np.stack(np.broadcast_arrays(*field_(x.T, p)), axis=-1)

        def jac(x):
            rows = jac_(x.T, p)
            out = np.empty((x.shape[0], dim, dim))
            for i in range(dim):
                for j in range(dim):
                    out[:, i, j] = rows[i][j]
            return out

        return f, jac


def _lorenz63_field(s, p):
    x, y, z = s
    sigma, rho, beta = p
    return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]


def _lorenz63_jac(s, p):
    x, y, z = s
    sigma, rho, beta = p
    return [[-sigma, sigma, 0.0], [rho - z, -1.0, -x], [y, x, -beta]]


def _roessler_field(s, p):
    x, y, z = s
    a, b, c = p
    return [-y - z, x + a * y, b + z * (x - c)]


def _roessler_jac(s, p):
    x, y, z = s
    a, b, c = p
    return [[0.0, -1.0, -1.0], [1.0, a, 0.0], [z, 0.0, x - c]]


def _thomas_field(s, p):
    x, y, z = s
    (b,) = p
    return [np.sin(y) - b * x, np.sin(z) - b * y, np.sin(x) - b * z]


def _thomas_jac(s, p):
    x, y, z = s
    (b,) = p
    return [[-b, np.cos(y), 0.0], [0.0, -b, np.cos(z)], [np.cos(x), 0.0, -b]]


def _halvorsen_field(s, p):
    x, y, z = s
    (a,) = p
    return [-a * x - 4.0 * y - 4.0 * z - y * y, -a * y - 4.0 * z - 4.0 * x - z * z,
            -a * z - 4.0 * x - 4.0 * y - x * x]


def _halvorsen_jac(s, p):
    x, y, z = s
    (a,) = p
    return [[-a, -4.0 - 2.0 * y, -4.0], [-4.0, -a, -4.0 - 2.0 * z],
            [-4.0 - 2.0 * x, -4.0, -a]]


def _chen_field(s, p):
    x, y, z = s
    a, b, c = p
    return [a * (y - x), (c - a) * x - x * z + c * y, x * y - b * z]


def _chen_jac(s, p):
    x, y, z = s
    a, b, c = p
    return [[-a, a, 0.0], [c - a - z, c, -x], [y, x, -b]]


def _sprott_b_field(s, p):
    x, y, z = s
    return [y * z, x - y, 1.0 - x * y]


def _sprott_b_jac(s, p):
    x, y, z = s
    return [[0.0, z, y], [1.0, -1.0, 0.0], [-y, -x, 0.0]]


#: The registered systems by name (see :func:`get_system`).
SYSTEMS: dict[str, ODESystem] = {s.name: s for s in (
    ODESystem(
        name="lorenz63", dim=3, vector_field=_lorenz63_field, jacobian=_lorenz63_jac,
        parameters={"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0},
        x0_low=(-15.0, -20.0, 5.0), x0_high=(15.0, 20.0, 40.0), transient=50.0,
        time_scale=1.0, lyapunov_reference=LORENZ63_LYAPUNOV_MAX, lyapunov_dt=0.01,
        lyapunov_t_max=50.0,
        description="Lorenz (1963): dx/dt = sigma (y - x), dy/dt = x (rho - z) - y, "
                    "dz/dt = x y - beta z; lambda_max 0.9056 (Sprott 2003)."),
    ODESystem(
        name="roessler", dim=3, vector_field=_roessler_field, jacobian=_roessler_jac,
        parameters={"a": 0.2, "b": 0.2, "c": 5.7},
        x0_low=(-5.0, -5.0, 0.0), x0_high=(5.0, 5.0, 1.0), transient=200.0,
        time_scale=10.0, lyapunov_reference=0.0714, lyapunov_dt=0.05, lyapunov_t_max=300.0,
        lyapunov_trajectories=256,
        description="Rössler (1976): dx/dt = -y - z, dy/dt = x + a y, dz/dt = b + z (x - c); "
                    "lambda_max 0.0714 (Sprott 2003)."),
    ODESystem(
        name="thomas", dim=3, vector_field=_thomas_field, jacobian=_thomas_jac,
        parameters={"b": 0.18},
        x0_low=(-1.0, -1.0, -1.0), x0_high=(1.0, 1.0, 1.0), transient=500.0,
        time_scale=25.0, lyapunov_reference=0.0349, lyapunov_dt=0.1, lyapunov_t_max=1000.0,
        description="Thomas' cyclically symmetric attractor (Thomas 1999): "
                    "dx/dt = sin y - b x, dy/dt = sin z - b y, dz/dt = sin x - b z; "
                    "lambda_max 0.0349 at b = 0.18 (Sprott, Elegant Chaos, 2010). Near the "
                    "onset of chaos (b = 0.208186) it is only weakly chaotic (about 0.01) and "
                    "has coexisting asymmetric attractors."),
    ODESystem(
        name="halvorsen", dim=3, vector_field=_halvorsen_field, jacobian=_halvorsen_jac,
        parameters={"a": 1.27},
        x0_low=(-1.0, -1.0, -1.0), x0_high=(1.0, 1.0, 1.0), transient=100.0,
        time_scale=1.0, lyapunov_reference=0.7899, lyapunov_dt=0.01, lyapunov_t_max=50.0,
        description="Halvorsen's cyclically symmetric attractor: dx/dt = -a x - 4 y - 4 z - y^2 "
                    "and its cyclic permutations; lambda_max 0.7899 at a = 1.27 (Sprott, "
                    "Elegant Chaos, 2010)."),
    ODESystem(
        name="chen", dim=3, vector_field=_chen_field, jacobian=_chen_jac,
        parameters={"a": 35.0, "b": 3.0, "c": 28.0},
        x0_low=(-10.0, -10.0, 10.0), x0_high=(10.0, 10.0, 30.0), transient=50.0,
        time_scale=0.5, lyapunov_reference=2.0272, lyapunov_dt=0.002, lyapunov_t_max=20.0,
        description="Chen (Chen & Ueta 1999): dx/dt = a (y - x), dy/dt = (c - a) x - x z + c y, "
                    "dz/dt = x y - b z; lambda_max 2.0272 (Lü, Chen & Zhang 2002)."),
    ODESystem(
        name="sprott_b", dim=3, vector_field=_sprott_b_field, jacobian=_sprott_b_jac,
        parameters={}, x0_low=(-1.0, -1.0, -1.0), x0_high=(1.0, 1.0, 1.0), transient=200.0,
        time_scale=4.0, lyapunov_reference=0.2101, lyapunov_dt=0.05, lyapunov_t_max=300.0,
        description="Sprott case B (Sprott 1994): dx/dt = y z, dy/dt = x - y, "
                    "dz/dt = 1 - x y; lambda_max 0.2101 (Sprott 1994)."),
)}


def get_system(name: str | ODESystem) -> ODESystem:
    """The registered :class:`ODESystem` called ``name`` (an ODESystem is returned as is).

    Parameters
    ----------
    name : str or ODESystem
        A key of :data:`SYSTEMS` (case-insensitive; ``"-"`` and ``"_"`` are equivalent).

    Returns
    -------
    ODESystem

    Raises
    ------
    ValueError
        If no system of that name is registered.

    Examples
    --------
    >>> from nwb_dsr.datasets import get_system
    >>> get_system("Roessler").parameters
    {'a': 0.2, 'b': 0.2, 'c': 5.7}
    """
    if isinstance(name, ODESystem):
        return name
    key = str(name).lower().replace("-", "_")
    if key not in SYSTEMS:
        raise ValueError(f"Unknown system {name!r}; choose one of {sorted(SYSTEMS)}.")
    return SYSTEMS[key]


# --------------------------------------------------------------------------------------------
# integrators
# --------------------------------------------------------------------------------------------

def _integrate(f: Callable, jac: Callable, x0: np.ndarray, times: np.ndarray, transient: float,
               method: str, rtol: float, atol: float) -> np.ndarray:
    """Integrate from ``x0`` for ``transient`` time units, then sample at ``times`` (> -transient).

    ``method="LSODA"`` uses :func:`scipy.integrate.odeint` (compiled LSODA with the analytic
    Jacobian; fast), any other name is passed to :func:`scipy.integrate.solve_ivp`.
    """
    t_eval, inverse = np.unique(np.asarray(times, dtype=float) + transient, return_inverse=True)
    if method == "LSODA":
        grid = np.concatenate([[0.0], t_eval]) if t_eval[0] > 0 else t_eval
        out = odeint(f, x0, grid, Dfun=jac, rtol=rtol, atol=atol, mxstep=10**6)
        out = out[1:] if t_eval[0] > 0 else out
    else:
        sol = solve_ivp(lambda t, s: f(s, t), (0.0, float(t_eval[-1])), x0, method=method,
                        t_eval=t_eval, rtol=rtol, atol=atol,
                        **({"jac": lambda t, s: jac(s, t)} if method in ("Radau", "BDF") else {}))
        if not sol.success:
            raise RuntimeError(f"The ODE integration failed ({sol.message}); try method='LSODA'.")
        out = sol.y.T
    if not np.all(np.isfinite(out)):
        raise RuntimeError("The ODE integration diverged (non-finite state); check the system "
                           "parameters and the initial condition x0.")
    return out[inverse.ravel()]


def _initial_state(x0, system: ODESystem, rng: np.random.Generator) -> np.ndarray:
    if x0 is None:
        return rng.uniform(system.x0_low, system.x0_high)
    x0 = np.asarray(x0, dtype=float)
    if x0.shape != (system.dim,) or not np.all(np.isfinite(x0)):
        raise ValueError(f"x0 must be {system.dim} finite numbers (the initial state); got "
                         f"{x0!r}.")
    return x0


def integrate(system: str | ODESystem, n_steps: int, dt: float, params=None, x0=None,
              transient: float | None = None, seed=None, method: str = "LSODA",
              rtol: float = 1e-11, atol: float = 1e-11) -> np.ndarray:
    """Integrate a registered system on a regular grid, after a discarded transient.

    Parameters
    ----------
    system : str or ODESystem
        The system (a name of :data:`SYSTEMS`).
    n_steps : int
        Number of samples returned.
    dt : float
        Sampling interval in system time units.
    params : mapping of str to float, optional
        Parameters that differ from the system's defaults.
    x0 : array_like of shape (dim,), optional
        Initial state at the start of the transient. Default: uniform at random in the
        system's box ``x0_low`` .. ``x0_high``, drawn from ``seed``.
    transient : float, optional
        Time units integrated from ``x0`` and discarded (default: the system's).
    seed : int or numpy.random.Generator, optional
        Random state for the initial condition (ignored when ``x0`` is given).
    method : str, default "LSODA"
        ``"LSODA"`` uses :func:`scipy.integrate.odeint` with the analytic Jacobian; any
        :func:`scipy.integrate.solve_ivp` method name (``"DOP853"``, ...) is also accepted.
    rtol, atol : float, default 1e-11
        Integration tolerances.

    Returns
    -------
    ndarray of shape (n_steps, dim)
        The state at times ``0, dt, ..., (n_steps - 1) dt`` after the transient.

    Raises
    ------
    ValueError
        If an argument is out of range or the system is unknown.

    Examples
    --------
    >>> from nwb_dsr.datasets import integrate
    >>> integrate("thomas", 200, dt=0.5, seed=0).shape
    (200, 3)
    """
    system = get_system(system)
    n_steps = _check_count(n_steps, "n_steps")
    dt = _check_positive(dt, "dt")
    transient = system.transient if transient is None else transient
    if transient < 0:
        raise ValueError(f"transient must be >= 0 (time units); got {transient!r}.")
    f, jac = system.functions(params)
    x0 = _initial_state(x0, system, np.random.default_rng(seed))
    return _integrate(f, jac, x0, np.arange(n_steps) * dt, float(transient), method, rtol, atol)


def lorenz63(n_steps: int, dt: float = 0.01, sigma: float = 10.0, rho: float = 28.0,
             beta: float = 8.0 / 3.0, x0=None, transient: float = 50.0, seed=None,
             method: str = "LSODA", rtol: float = 1e-11, atol: float = 1e-11) -> np.ndarray:
    """Integrate the Lorenz-63 system on a regular grid, after a discarded transient.

    ``dx/dt = sigma (y - x)``, ``dy/dt = x (rho - z) - y``, ``dz/dt = x y - beta z``.

    Parameters
    ----------
    n_steps : int
        Number of samples returned.
    dt : float, default 0.01
        Sampling interval in Lorenz time units.
    sigma, rho, beta : float
        System parameters (default: the classic chaotic 10, 28, 8/3).
    x0 : array_like of shape (3,), optional
        Initial state at the start of the transient. Default: uniform at random in
        [-15, 15] x [-20, 20] x [5, 40], drawn from ``seed``.
    transient : float, default 50.0
        Lorenz time units integrated from ``x0`` and discarded, so that the returned trajectory
        lies on the attractor.
    seed : int or numpy.random.Generator, optional
        Random state for the initial condition (ignored when ``x0`` is given).
    method : str, default "LSODA"
        ``"LSODA"`` uses :func:`scipy.integrate.odeint` with the analytic Jacobian; any
        :func:`scipy.integrate.solve_ivp` method name (``"DOP853"``, ``"RK45"``, ...) is also
        accepted (slower).
    rtol, atol : float, default 1e-11
        Integration tolerances.

    Returns
    -------
    ndarray of shape (n_steps, 3)
        The state (x, y, z) at times ``0, dt, ..., (n_steps - 1) dt`` after the transient.

    Examples
    --------
    >>> from nwb_dsr.datasets import lorenz63
    >>> x = lorenz63(500, seed=0)
    >>> x.shape
    (500, 3)
    >>> bool(abs(x[:, 0]).max() < 25 and 0 < x[:, 2].min() and x[:, 2].max() < 50)
    True
    """
    return integrate("lorenz63", n_steps, dt, dict(sigma=sigma, rho=rho, beta=beta), x0,
                     transient, seed, method, rtol, atol)


def roessler(n_steps: int, dt: float = 0.05, a: float = 0.2, b: float = 0.2, c: float = 5.7,
             x0=None, transient: float = 200.0, seed=None, method: str = "LSODA",
             rtol: float = 1e-11, atol: float = 1e-11) -> np.ndarray:
    """Integrate the Rössler system on a regular grid, after a discarded transient.

    ``dx/dt = -y - z``, ``dy/dt = x + a y``, ``dz/dt = b + z (x - c)``.

    Parameters
    ----------
    n_steps : int
        Number of samples returned.
    dt : float, default 0.05
        Sampling interval in Rössler time units (one loop takes about 6 units).
    a, b, c : float
        System parameters (default: the classic chaotic 0.2, 0.2, 5.7).
    x0 : array_like of shape (3,), optional
        Initial state at the start of the transient. Default: uniform at random in
        [-5, 5] x [-5, 5] x [0, 1], drawn from ``seed``.
    transient : float, default 200.0
        Time units integrated from ``x0`` and discarded.
    seed, method, rtol, atol
        As in :func:`lorenz63`.

    Returns
    -------
    ndarray of shape (n_steps, 3)
        The state (x, y, z) every ``dt`` after the transient.

    Examples
    --------
    >>> from nwb_dsr.datasets import roessler
    >>> x = roessler(400, seed=0)
    >>> x.shape, bool(abs(x[:, :2]).max() < 15 and x[:, 2].min() >= 0)
    ((400, 3), True)
    """
    return integrate("roessler", n_steps, dt, dict(a=a, b=b, c=c), x0, transient, seed,
                     method, rtol, atol)


# --------------------------------------------------------------------------------------------
# Lyapunov exponents of the ODE (QR / Benettin method)
# --------------------------------------------------------------------------------------------

def _benettin(f_batch: Callable, jac_batch: Callable, starts: np.ndarray, dt: float, t_max: float,
              t_transient: float, renorm_every: int) -> np.ndarray:
    """Lyapunov spectrum by the QR method, averaged over a batch of starting states.

    The state and an orthonormal tangent basis Q are advanced together with RK4 (step ``dt``)
    through ``dx/dt = f(x)``, ``dQ/dt = J(x) Q``; every ``renorm_every`` steps Q is
    re-orthonormalised by QR and ``log|diag R|`` accumulated (after ``t_transient``, which lets
    Q align with the Lyapunov vectors). Returns the spectrum per time unit, shape (dim,).
    """
    x = np.array(starts, dtype=float)
    n_batch, dim = x.shape
    q = np.broadcast_to(np.eye(dim), (n_batch, dim, dim)).copy()
    n_skip = int(np.ceil(t_transient / (dt * renorm_every)))
    n_keep = max(1, int(round(t_max / (dt * renorm_every))))
    acc = np.zeros((n_batch, dim))

    def g(xs, qs):
        return f_batch(xs), jac_batch(xs) @ qs

    for block in range(n_skip + n_keep):
        for _ in range(renorm_every):
            k1x, k1q = g(x, q)
            k2x, k2q = g(x + 0.5 * dt * k1x, q + 0.5 * dt * k1q)
            k3x, k3q = g(x + 0.5 * dt * k2x, q + 0.5 * dt * k2q)
            k4x, k4q = g(x + dt * k3x, q + dt * k3q)
            x = x + dt / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
            q = q + dt / 6.0 * (k1q + 2.0 * k2q + 2.0 * k3q + k4q)
        q, r = np.linalg.qr(q)
        diag = np.diagonal(r, axis1=1, axis2=2)
        q = q * np.sign(diag)[:, None, :]
        if block >= n_skip:
            acc += np.log(np.abs(diag))
    if not np.all(np.isfinite(acc)):
        raise RuntimeError("The Lyapunov estimate diverged (non-finite values); use a smaller dt.")
    return np.sort(acc.mean(axis=0) / (n_keep * renorm_every * dt))[::-1]


_LYAPUNOV_CACHE: dict = {}


def lyapunov_spectrum(system: str | ODESystem, params=None, *, t_max: float | None = None,
                      n_trajectories: int | None = None, dt: float | None = None,
                      transient: float | None = None, renorm_every: int = 10,
                      seed: int = 0) -> np.ndarray:
    """Lyapunov spectrum of a registered ODE by the QR (Benettin) method.

    ``n_trajectories`` starting states are taken on the attractor (spread along one long
    trajectory integrated from a random state in the system's box, at least 5 time units
    apart), then each is advanced with an orthonormal tangent basis through the analytic
    Jacobian (RK4, step ``dt``), re-orthonormalised by QR every ``renorm_every`` steps; the
    log-stretching factors ``log|diag R|`` are accumulated after a tangent transient and
    averaged over time and trajectories. The exponents sum to the mean divergence of the vector
    field up to integration and sampling error.

    Results are cached in-process per (system, parameters, settings), so repeated calls are
    free.

    Parameters
    ----------
    system : str or ODESystem
        The system (a name of :data:`SYSTEMS`).
    params : mapping of str to float, optional
        Parameters that differ from the system's defaults.
    t_max : float, optional
        Averaging time per trajectory in system time units (default: the system's
        ``lyapunov_t_max``). The statistical error falls like the inverse square root of
        ``n_trajectories * t_max``.
    n_trajectories : int, optional
        Independent starting states advanced together, vectorised (default: the system's
        ``lyapunov_trajectories``).
    dt : float, optional
        RK4 step in system time units (default: the system's ``lyapunov_dt``).
    transient : float, optional
        Time units over which the tangent basis aligns, not counted (default: ``t_max / 10``).
    renorm_every : int, default 10
        RK4 steps between QR re-orthonormalisations.
    seed : int, default 0
        Seed of the first initial condition.

    Returns
    -------
    ndarray of shape (dim,)
        The exponents per system time unit, largest first.

    Raises
    ------
    ValueError
        If an argument is out of range or the system is unknown.

    Examples
    --------
    >>> from nwb_dsr.datasets import lyapunov_spectrum
    >>> lam = lyapunov_spectrum("lorenz63", t_max=10.0, n_trajectories=8)
    >>> round(float(lam.sum()), 2)   # = -(sigma + 1 + beta)
    -13.67
    """
    system = get_system(system)
    p = system.values(params)
    if n_trajectories is None:
        n_trajectories = system.lyapunov_trajectories
    n_trajectories = _check_count(n_trajectories, "n_trajectories")
    renorm_every = _check_count(renorm_every, "renorm_every")
    t_max = _check_positive(system.lyapunov_t_max if t_max is None else t_max, "t_max")
    dt = _check_positive(system.lyapunov_dt if dt is None else dt, "dt")
    transient = t_max / 10.0 if transient is None else float(transient)
    if not np.isfinite(transient) or transient < 0:
        raise ValueError(f"transient must be a finite number >= 0; got {transient!r}.")
    seed = _check_count(seed, "seed", minimum=0)
    key = (system.name, system.vector_field, p, t_max, n_trajectories, dt, transient,
           renorm_every, seed)
    if key not in _LYAPUNOV_CACHE:
        f, jac = system.functions(params)
        rng = np.random.default_rng(seed)
        spacing = max(5.0, 50 * dt * renorm_every)
        starts = _integrate(f, jac, rng.uniform(system.x0_low, system.x0_high),
                            np.arange(n_trajectories) * spacing, system.transient, "LSODA",
                            1e-10, 1e-10)
        f_batch, jac_batch = system.batch_functions(params)
        _LYAPUNOV_CACHE[key] = _benettin(f_batch, jac_batch, starts, dt, t_max, transient,
                                         renorm_every)
    return _LYAPUNOV_CACHE[key].copy()


def lyapunov_max(system: str | ODESystem, params=None, **kwargs) -> float:
    """Largest Lyapunov exponent of a registered ODE, per system time unit, computed numerically.

    Parameters
    ----------
    system : str or ODESystem
        The system (a name of :data:`SYSTEMS`).
    params : mapping of str to float, optional
        Parameters that differ from the system's defaults.
    **kwargs
        Passed to :func:`lyapunov_spectrum` (``t_max``, ``n_trajectories``, ``dt``,
        ``transient``, ``renorm_every``, ``seed``).

    Returns
    -------
    float
        The largest exponent per system time unit; multiply by the system time units per second
        (``time_scale``) to get 1/s.

    Examples
    --------
    >>> from nwb_dsr.datasets import lyapunov_max
    >>> bool(abs(lyapunov_max("lorenz63", t_max=10.0, n_trajectories=32) - 0.906) < 0.05)
    True
    """
    return float(lyapunov_spectrum(system, params, **kwargs)[0])


def lorenz_lyapunov_spectrum(sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
                             t_max: float = 50.0, n_trajectories: int = 64, dt: float = 0.01,
                             transient: float = 5.0, renorm_every: int = 10,
                             seed=0) -> np.ndarray:
    """Lyapunov spectrum of the Lorenz-63 ODE by the QR (Benettin) method.

    :func:`lyapunov_spectrum` for ``"lorenz63"`` (see there). The spectrum sums to
    ``-(sigma + 1 + beta)`` up to integration error, a built-in check.

    Parameters
    ----------
    sigma, rho, beta : float
        Lorenz-63 parameters (default: 10, 28, 8/3).
    t_max : float, default 50.0
        Averaging time per trajectory, in Lorenz time units (the defaults give lambda_max to
        about 0.5 % in under 2 s).
    n_trajectories : int, default 64
        Independent starting states advanced together.
    dt : float, default 0.01
        RK4 step in Lorenz time units.
    transient : float, default 5.0
        Time units over which the tangent basis aligns, not counted.
    renorm_every : int, default 10
        RK4 steps between QR re-orthonormalisations.
    seed : int, default 0
        Seed of the first initial condition.

    Returns
    -------
    ndarray of shape (3,)
        The exponents per Lorenz time unit, largest first.

    Examples
    --------
    >>> from nwb_dsr.datasets import lorenz_lyapunov_spectrum
    >>> lam = lorenz_lyapunov_spectrum(t_max=10.0, n_trajectories=8)
    >>> round(float(lam.sum()), 2)   # = -(sigma + 1 + beta)
    -13.67
    """
    return lyapunov_spectrum("lorenz63", dict(sigma=sigma, rho=rho, beta=beta), t_max=t_max,
                             n_trajectories=n_trajectories, dt=dt, transient=transient,
                             renorm_every=renorm_every, seed=seed)


def lorenz_lyapunov_max(sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
                        **kwargs) -> float:
    """Largest Lyapunov exponent of the Lorenz-63 ODE, per Lorenz time unit, computed numerically.

    The QR (Benettin) method of :func:`lorenz_lyapunov_spectrum`; about 0.906 for the classic
    parameters (reference value :data:`LORENZ63_LYAPUNOV_MAX` = 0.9056).

    Parameters
    ----------
    sigma, rho, beta : float
        Lorenz-63 parameters (default: 10, 28, 8/3).
    **kwargs
        Passed to :func:`lorenz_lyapunov_spectrum` (``t_max``, ``n_trajectories``, ``dt``,
        ``transient``, ``renorm_every``, ``seed``).

    Returns
    -------
    float
        The largest exponent per Lorenz time unit; multiply by the number of Lorenz time units
        per second to get 1/s.

    Examples
    --------
    >>> from nwb_dsr.datasets import lorenz_lyapunov_max
    >>> lam = lorenz_lyapunov_max(t_max=10.0, n_trajectories=32)
    >>> bool(abs(lam - 0.906) < 0.05)
    True
    """
    return float(lorenz_lyapunov_spectrum(sigma, rho, beta, **kwargs)[0])


def _lorenz_rhs(sigma: float, rho: float, beta: float) -> tuple[Callable, Callable]:
    """``(f, jac)`` of Lorenz-63 at these parameters (odeint's signature)."""
    return SYSTEMS["lorenz63"].functions(dict(sigma=sigma, rho=rho, beta=beta))
