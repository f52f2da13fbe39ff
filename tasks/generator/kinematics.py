"""Minimal relativistic kinematics for the sample generator: four-vectors as
``numpy`` arrays ``[E, px, py, pz]`` in GeV."""

from __future__ import annotations

import math

import numpy as np


def from_pt_y_phi_m(pt: float, y: float, phi: float, m: float) -> np.ndarray:
    """Four-vector from transverse momentum, rapidity, azimuth and mass."""
    mt = math.sqrt(m * m + pt * pt)
    return np.array([mt * math.cosh(y), pt * math.cos(phi), pt * math.sin(phi), mt * math.sinh(y)])


def from_pt_eta_phi(pt: float, eta: float, phi: float) -> np.ndarray:
    """Massless four-vector from (pT, η, φ)."""
    return np.array([pt * math.cosh(eta), pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)])


def mass(p: np.ndarray) -> float:
    return math.sqrt(max(p[0] ** 2 - p[1] ** 2 - p[2] ** 2 - p[3] ** 2, 0.0))


def pt_eta_phi(p: np.ndarray) -> tuple[float, float, float]:
    pt = math.hypot(p[1], p[2])
    eta = math.asinh(p[3] / pt) if pt > 0 else math.copysign(10.0, p[3])
    return pt, eta, math.atan2(p[2], p[1])


def boost(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Lorentz-boost ``p`` by velocity ``beta`` (3-vector, |beta| < 1)."""
    b2 = float(beta @ beta)
    if b2 <= 0.0:
        return p.copy()
    gamma = 1.0 / math.sqrt(1.0 - b2)
    bp = float(beta @ p[1:])
    factor = (gamma - 1.0) * bp / b2 + gamma * p[0]
    out = np.empty(4)
    out[0] = gamma * (p[0] + bp)
    out[1:] = p[1:] + factor * beta
    return out


def two_body_decay(parent: np.ndarray, m1: float, m2: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic two-body decay of ``parent`` into daughters of masses m1, m2."""
    m = mass(parent)
    if m <= m1 + m2:
        raise ValueError(f"cannot decay mass {m:.2f} into {m1:.2f} + {m2:.2f}")
    p_star = math.sqrt((m * m - (m1 + m2) ** 2) * (m * m - (m1 - m2) ** 2)) / (2.0 * m)
    cos_t = rng.uniform(-1.0, 1.0)
    sin_t = math.sqrt(1.0 - cos_t * cos_t)
    phi = rng.uniform(-math.pi, math.pi)
    direction = np.array([sin_t * math.cos(phi), sin_t * math.sin(phi), cos_t])
    d1 = np.concatenate([[math.sqrt(p_star**2 + m1**2)], p_star * direction])
    d2 = np.concatenate([[math.sqrt(p_star**2 + m2**2)], -p_star * direction])
    beta = parent[1:] / parent[0]
    return boost(d1, beta), boost(d2, beta)


def breit_wigner(rng: np.random.Generator, m0: float, width: float, low: float, high: float) -> float:
    """A mass from a Cauchy (non-relativistic Breit-Wigner) line shape, truncated."""
    while True:
        m = m0 + 0.5 * width * math.tan(math.pi * (rng.uniform() - 0.5))
        if low < m < high:
            return m


def wrap_phi(phi):
    """Wrap angles into [-π, π)."""
    return (np.asarray(phi) + math.pi) % (2.0 * math.pi) - math.pi
