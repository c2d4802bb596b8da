"""Conformance checks plugin authors run on their own divergences (DESIGN §4).

>>> from omasgan import divergences
>>> from omasgan.testing import check_divergence
>>> report = check_divergence(divergences.get("kl"), max_examples=20)
>>> report.passed
True

Each property is driven by hypothesis (derandomised, so a run is repeatable) in float64. A failure
names the property and hypothesis's minimal counterexample. f-divergence properties are skipped,
with a reason, for divergences that are not :class:`~omasgan.divergences.FDivergence`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omasgan.divergences.base import Divergence
from omasgan.divergences.fdivergence import FDivergence

__all__ = ["ConformanceError", "ConformanceReport", "PropertyResult", "check_divergence"]

EXTREME = 1e4  # critic outputs the losses must survive
MODERATE = 30.0  # critic outputs where the textbook f*(g_f(v)) must itself be finite


class ConformanceError(AssertionError):
    """A divergence failed a conformance property; the message names it and the counterexample."""


@dataclass
class PropertyResult:
    name: str
    status: str  # "passed", "failed" or "skipped"
    detail: str = ""


@dataclass
class ConformanceReport:
    divergence: str
    results: list[PropertyResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    @property
    def failures(self) -> list[PropertyResult]:
        return [r for r in self.results if r.status == "failed"]

    def __str__(self) -> str:
        width = max(len(r.name) for r in self.results)
        lines = [f"conformance of divergence {self.divergence!r}:"]
        for r in self.results:
            line = f"  {r.status.upper():7} {r.name:{width}}"
            if r.detail:
                line += "  " + r.detail.replace("\n", "\n" + " " * (width + 12))
            lines.append(line.rstrip())
        return "\n".join(lines)


def _t(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * (1.0 + abs(a) + abs(b))


positive = st.floats(min_value=-3.0, max_value=3.0).map(lambda e: 10.0**e)  # u in [1e-3, 1e3], log-uniform
moderate_v = st.floats(min_value=-MODERATE, max_value=MODERATE)
small_v = st.floats(min_value=-4.0, max_value=4.0)
# Critic outputs every run tries, whatever hypothesis draws: the edges where exp, log and 1/x first overflow
# or underflow in float32 (e^46 ~ 1e20, and its square overflows) and the ends of [-EXTREME, EXTREME].
EXTREME_GRID = tuple(
    sorted({0.0, *(s * m for s in (-1.0, 1.0) for m in (1.0, 10.0, 46.0, 88.0, 100.0, 1e3, EXTREME))})
)
extreme_v = st.floats(min_value=-EXTREME, max_value=EXTREME) | st.sampled_from(EXTREME_GRID)


def _in_domain(t: float, domain: tuple[float, float], closed: bool) -> bool:
    lo, hi = domain
    return (lo <= t <= hi) if closed else (lo < t < hi)


def numerical_conjugate(f: Callable[[torch.Tensor], torch.Tensor], t: float) -> float:
    """sup_{u >= 0} (u t - f(u)) by a log-spaced grid over [1e-12, 1e12] refined by golden-section search
    (u t - f(u) is concave in u)."""
    u = torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-12, 12, 4801, dtype=torch.float64)])
    with torch.no_grad():
        values = u * t - f(u)
    values = torch.where(torch.isnan(values), torch.full_like(values, -math.inf), values)
    k = int(torch.argmax(values))
    lo, hi = float(u[max(k - 1, 0)]), float(u[min(k + 1, len(u) - 1)])
    ratio = (math.sqrt(5) - 1) / 2
    objective = lambda x: float(x * t - f(_t(x)))  # noqa: E731
    a, b = lo, hi
    for _ in range(200):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if objective(c) >= objective(d):
            b = d
        else:
            a = c
    return max(float(values[k]), objective((a + b) / 2))


def _f_prime(f: Callable[[torch.Tensor], torch.Tensor], u: float) -> float:
    x = _t(u).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x), x)
    return float(grad)


def _f_properties(div: FDivergence) -> list[tuple[str, Callable[[], None]]]:
    f, conj, act, domain = div.f, div.conjugate, div.activation, div.conjugate_domain

    def f_at_one() -> None:
        value = float(f(_t(1.0)))
        assert abs(value) <= 1e-9, f"f(1) = {value!r}, expected 0"

    def f_prime_at_one() -> None:
        # One-sided difference quotients at u = 1 (float64): f_prime_at_1 must lie between them, so a
        # subgradient passes where f has a kink at 1 and the derivative must match where it is smooth.
        h = 1e-6
        left = (float(f(_t(1.0))) - float(f(_t(1.0 - h)))) / h
        right = (float(f(_t(1.0 + h))) - float(f(_t(1.0)))) / h
        low, high = min(left, right), max(left, right)
        tol = 1e-4 * (1.0 + abs(low) + abs(high))
        declared = div.f_prime_at_1
        assert low - tol <= declared <= high + tol, (
            f"f_prime_at_1 = {declared} but the difference quotients of f at 1 are {left:.6g} (left), "
            f"{right:.6g} (right)"
        )

    @given(u1=positive, u2=positive, lam=st.floats(0.0, 1.0))
    def f_convex(u1, u2, lam):
        mix = float(f(_t(lam * u1 + (1 - lam) * u2)))
        chord = lam * float(f(_t(u1))) + (1 - lam) * float(f(_t(u2)))
        assert mix <= chord + 1e-9 * (1 + abs(chord)), f"f(mix) = {mix} > chord {chord} at u1={u1}, u2={u2}, lam={lam}"

    @given(u=positive, v=moderate_v)
    def fenchel_young(u, v):
        t = float(act(_t(v)))
        if not _in_domain(t, domain, closed=False):
            return  # the domain property reports this
        lhs, rhs = float(f(_t(u))) + float(conj(_t(t))), u * t
        assert lhs >= rhs - 1e-8 * (1 + abs(rhs)), f"f(u) + f*(t) = {lhs} < u t = {rhs} at u={u}, t={t}"

    @given(u=st.floats(min_value=-2.0, max_value=2.0).map(lambda e: 10.0**e))
    def fenchel_young_equality(u):
        t = _f_prime(f, u)
        if not _in_domain(t, domain, closed=False):
            return
        lhs, rhs = float(f(_t(u))) + float(conj(_t(t))), u * t
        assert _close(lhs, rhs, 1e-7), f"f(u) + f*(f'(u)) = {lhs} != u f'(u) = {rhs} at u={u} (t={t})"

    @given(v=small_v)
    def conjugate_matches_sup(v):
        t = float(act(_t(v)))
        if not _in_domain(t, domain, closed=False):
            return
        expected, got = numerical_conjugate(f, t), float(conj(_t(t)))
        assert _close(got, expected, 1e-5), f"f*({t}) = {got} but sup_u(u t - f(u)) = {expected} (v={v})"

    @given(v=extreme_v)
    def activation_in_domain(v):
        for value in (v, *EXTREME_GRID):
            t = float(act(_t(value)))
            closed = abs(value) > 15  # far out g_f may round onto the boundary of the open domain
            assert _in_domain(t, domain, closed), f"g_f({value}) = {t} is outside dom f* = {domain}"

    @given(v=moderate_v)
    def conjugate_of_activation_finite(v):
        value = float(conj(act(_t(v))))
        assert math.isfinite(value), f"f*(g_f({v})) = {value}"

    # |v| <= 10: beyond, the textbook composition itself loses digits (e.g. 1 - (1 - e^-v)), not the fused form.
    @given(v=st.floats(min_value=-10.0, max_value=10.0))
    def stable_terms_match_composition(v):
        x = _t(v)
        real, fake = float(div.critic_real_term(x)), float(div.critic_fake_term(x))
        real_ref, fake_ref = -float(act(x)), float(conj(act(x)))
        if math.isfinite(real_ref):
            assert _close(real, real_ref, 1e-6), f"real term {real} != -g_f(v) = {real_ref} at v={v}"
        if math.isfinite(fake_ref):
            assert _close(fake, fake_ref, 1e-6), f"fake term {fake} != f*(g_f(v)) = {fake_ref} at v={v}"

    return [
        ("f(1) = 0", f_at_one),
        ("f_prime_at_1 = f'(1) numerically", f_prime_at_one),
        ("f is convex", f_convex),
        ("Fenchel-Young: f(u) + f*(t) >= u t", fenchel_young),
        ("Fenchel-Young equality at t = f'(u)", fenchel_young_equality),
        ("f* = sup_u (u t - f(u)) numerically", conjugate_matches_sup),
        ("g_f maps every real into dom f*", activation_in_domain),
        ("f*(g_f(v)) is finite", conjugate_of_activation_finite),
        ("fused loss terms equal -g_f and f*(g_f)", stable_terms_match_composition),
    ]


def _loss_properties(div: Divergence) -> list[tuple[str, Callable[[], None]]]:
    batch = st.lists(extreme_v, min_size=2, max_size=8)

    def finite_losses_and_gradients(real: list[float], fake: list[float]) -> None:
        v_real = torch.tensor(real, dtype=torch.float32, requires_grad=True)
        v_fake = torch.tensor(fake, dtype=torch.float32, requires_grad=True)
        losses = {
            "critic_loss": div.critic_loss(v_real, v_fake),
            "generator_loss": div.generator_loss(v_fake),
            "estimate": div.estimate(v_real, v_fake),
        }
        for name, loss in losses.items():
            assert loss.dim() == 0, f"{name} is not a scalar: shape {tuple(loss.shape)}"
            assert torch.isfinite(loss), f"{name} = {loss.item()} for real={real}, fake={fake}"
            inputs = [t for t in (v_real, v_fake) if loss.grad_fn is not None]
            grads = torch.autograd.grad(loss, inputs, allow_unused=True, retain_graph=True) if inputs else []
            for g in grads:
                assert g is None or torch.isfinite(g).all(), f"grad of {name} not finite for real={real}, fake={fake}"

    @given(real=batch, fake=batch)
    def losses_finite_at_extremes(real, fake):
        finite_losses_and_gradients(real, fake)

    def losses_finite_on_the_grid():
        # Every pair of grid values, as a mixed batch on either side and against a batch of zeros, so that
        # a default run finds what a long random search would (e.g. real=[0, 0], fake=[0, 46]).
        for a in EXTREME_GRID:
            for b in EXTREME_GRID:
                finite_losses_and_gradients([a, b], [b, a])
                finite_losses_and_gradients([0.0, 0.0], [a, b])
                finite_losses_and_gradients([a, b], [0.0, 0.0])

    @given(v=batch)
    def terms_are_per_sample(v):
        x = torch.tensor(v, dtype=torch.float32)
        terms = {"critic_real_term": div.critic_real_term(x), "critic_fake_term": div.critic_fake_term(x)}
        for name, term in terms.items():
            assert term.shape == x.shape, f"{name} has shape {tuple(term.shape)} for input {tuple(x.shape)}"

    return [
        ("losses finite, with finite gradients, for outputs in [-1e4, 1e4]", losses_finite_at_extremes),
        ("losses finite, with finite gradients, on the grid of extreme outputs", losses_finite_on_the_grid),
        ("critic terms are per-sample", terms_are_per_sample),
    ]


def _run(check: Callable[[], None], max_examples: int) -> PropertyResult:
    test = check
    if hasattr(check, "hypothesis"):
        test = settings(
            max_examples=max_examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(check)
    try:
        test()
    except Exception as exc:  # AssertionError from a property, or the divergence raising
        notes = [n for n in getattr(exc, "__notes__", []) if "Falsifying" in n or "=" in n]
        detail = f"{type(exc).__name__}: {exc}"
        if notes:
            detail += "\n" + "\n".join(notes)
        return PropertyResult(check.__name__, "failed", detail)
    return PropertyResult(check.__name__, "passed")


def check_divergence(div: Divergence, *, max_examples: int = 100, raise_on_failure: bool = True) -> ConformanceReport:
    """Run the conformance suite on ``div``.

    Parameters
    ----------
    div : Divergence
        An instance, e.g. ``omasgan.divergences.get("kl")`` or your own.
    max_examples : int
        Hypothesis examples per property.
    raise_on_failure : bool
        Raise :class:`ConformanceError` (an ``AssertionError``) listing the failed properties.

    Returns
    -------
    ConformanceReport
        One :class:`PropertyResult` per property; ``str(report)`` is a readable table.
    """
    report = ConformanceReport(getattr(div, "name", type(div).__name__))
    f_props = _f_properties(div) if isinstance(div, FDivergence) else []
    if not f_props:
        report.results.append(PropertyResult("f-divergence properties", "skipped", "not an FDivergence"))
    for name, check in [*f_props, *_loss_properties(div)]:
        result = _run(check, max_examples)
        result.name = name
        report.results.append(result)
    if raise_on_failure and not report.passed:
        raise ConformanceError(str(report))
    return report
