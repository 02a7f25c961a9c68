"""Atomic models for the HRTEM simulators, built with ASE.

Geometry convention (all lengths in Å): the beam runs along +z, the image is the x-y
plane, and a supported particle sits on a support whose free surface faces +y, i.e. the
profile view of seed 003 (appendix A.3): CeO2 [110] || Pt [110] || beam, CeO2 (111) ||
Pt (111) || the interface, [-11-2] along x.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.build import bulk, make_supercell
from ase.cluster import wulff_construction

CEO2_A = 5.411  # fluorite lattice constant of CeO2 [Å]
PT_A = 3.924  # fcc lattice constant of Pt [Å]

# Cubic directions of the profile view: x = [-11-2], y = [-111] (surface normal),
# z = [110] (beam); right-handed (determinant +6), so it is a proper rotation.
PROFILE_DIRECTIONS = np.array([[-1, 1, -2], [-1, 1, 1], [1, 1, 0]])

DEFECTS = ("D0", "D1", "D2", "Dh", "Ds")


@dataclass
class SupportedParticle:
    """A supported-particle model with the bookkeeping the simulators need.

    Attributes
    ----------
    atoms : ase.Atoms
        The model in an orthogonal cell, beam along z, all atoms inside the cell.
    pt_columns : ndarray, shape (n, 2)
        Projected (x, y) centres of the particle's atomic columns after tilting [Å].
    info : dict
        Structural parameters (JSON-serialisable) recorded with every image.
    """

    atoms: Atoms
    pt_columns: np.ndarray
    info: dict = field(default_factory=dict)


def _unit_rows(directions: np.ndarray) -> np.ndarray:
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def oriented_ceo2_block(nx: int, ny: int, nz: int, *, a: float = CEO2_A) -> Atoms:
    """Return CeO2 (fluorite) as an orthogonal block in the profile-view orientation.

    Parameters
    ----------
    nx, ny, nz : int
        Repetitions of the orthogonal cell (a*sqrt(6), a*sqrt(3), a*sqrt(2)) along x, y, z.
    a : float
        Lattice constant [Å].
    """
    cubic = bulk("CeO2", "fluorite", a=a, cubic=True)
    cell = make_supercell(cubic, PROFILE_DIRECTIONS)
    positions = cell.positions @ np.linalg.inv(cell.cell.array) @ np.diag(cell.cell.lengths())
    ortho = Atoms(cell.get_chemical_symbols(), positions=positions, cell=np.diag(cell.cell.lengths()), pbc=True)
    ortho.wrap()
    return ortho.repeat((nx, ny, nz))


def ceo2_support(
    extent_x: float,
    thickness: float,
    trilayers: int,
    *,
    y0: float,
    margin_x: float = 0.0,
    step: tuple[float, float] | None = None,
    a: float = CEO2_A,
) -> tuple[Atoms, float]:
    """Build an O-terminated CeO2 (111) slab seen along [110], seed 003 appendix A.3.

    Parameters
    ----------
    extent_x : float
        Width along x [Å]; rounded to whole x periods (a*sqrt(6)) so the slab is periodic.
    thickness : float
        Thickness along the beam [Å]; rounded to whole (a/sqrt(2)) translations.
    trilayers : int
        Number of O-Ce-O (111) trilayers stacked along y.
    y0 : float
        y of the lowest Ce plane [Å].
    margin_x : float
        Extra width on both sides (for tilting before the final crop) [Å].
    step : (x_start, x_stop) or None
        Remove the top trilayer between these x values: a surface step defect.

    Returns
    -------
    atoms : ase.Atoms
    y_top : float
        y of the outermost O plane of the free surface [Å].
    """
    px, py = a * np.sqrt(6), a * np.sqrt(3)
    pz = a / np.sqrt(2)
    nx = max(1, int(round(extent_x / px)))
    n_margin = int(np.ceil(margin_x / px))
    nz = max(1, int(round(thickness / pz)))
    ny = trilayers // 3 + 2
    block = oriented_ceo2_block(nx + 2 * n_margin, ny, int(np.ceil(nz / 2)) + 1, a=a)
    pos = block.positions
    ce = np.array(block.get_chemical_symbols()) == "Ce"
    ce_planes = np.unique(np.round(pos[ce, 1], 3))
    d111 = a / np.sqrt(3)
    half = d111 / 4 + 0.05  # O planes sit a*sqrt(3)/12 above/below each Ce plane
    # Start at the second Ce plane: the O plane below the first one lies outside the block.
    lo, hi = ce_planes[1], ce_planes[trilayers]
    keep = (pos[:, 1] > lo - half) & (pos[:, 1] < hi + half) & (pos[:, 2] < nz * pz - 1e-3)
    if step is not None:
        x_shift = n_margin * px
        in_step = (pos[:, 0] - x_shift >= step[0]) & (pos[:, 0] - x_shift < step[1])
        keep &= ~(in_step & (pos[:, 1] > ce_planes[trilayers - 1] + half))
    atoms = block[keep]
    atoms.positions[:, 0] -= n_margin * px
    atoms.positions[:, 1] += y0 - lo
    y_top = hi - lo + y0 + d111 / 4
    atoms.cell = np.diag([nx * px, atoms.cell.lengths()[1], nz * pz])
    return atoms, y_top


def pt_particle(
    n_atoms: int,
    rng: np.random.Generator,
    *,
    truncation_layers: int = 1,
    a: float = PT_A,
) -> Atoms:
    """Build a faceted fcc Pt particle (Wulff shape), oriented for the profile view.

    The surface energies of {111}, {100}, {110} are jittered so that the facet
    proportions vary between particles (seed 003 appendix A.3: "faceted Pt
    nanoparticles ... of various size, shape"). The particle is cut flat on its
    lowest (111) planes to make the interface.

    Parameters
    ----------
    n_atoms : int
        Approximate number of atoms before truncation (~35 for 1 nm, ~940 for 3 nm).
    rng : numpy.random.Generator
    truncation_layers : int
        Number of bottom (111) layers removed.
    """
    energies = [1.0, 1.0 + rng.uniform(0.05, 0.3), 1.0 + rng.uniform(0.15, 0.5)]
    cluster = wulff_construction(
        "Pt", [(1, 1, 1), (1, 0, 0), (1, 1, 0)], energies, int(n_atoms), "fcc",
        rounding="closest", latticeconstant=a,
    )
    rotation = _unit_rows(PROFILE_DIRECTIONS)
    pos = cluster.positions @ rotation.T
    layer = np.round(pos[:, 1] / (a / np.sqrt(3))).astype(int)
    keep = layer >= layer.min() + truncation_layers
    pos = pos[keep]
    pos -= pos.min(axis=0)
    return Atoms(["Pt"] * len(pos), positions=pos)


def projected_columns(positions: np.ndarray, tolerance: float = 0.2) -> list[np.ndarray]:
    """Group atoms into columns along z by their projected (x, y) position.

    Returns a list of index arrays, one per column.
    """
    keys = np.round(positions[:, :2] / tolerance).astype(np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    return [np.flatnonzero(inverse.ravel() == k) for k in range(inverse.max() + 1)]


def apply_defect(particle: Atoms, defect: str, rng: np.random.Generator) -> tuple[Atoms, list]:
    """Alter exposed corner/edge columns of a particle: seed 003 section 5 and Fig. 10.

    ``D0`` keeps the particle; ``D1``/``D2`` remove one/two whole surface columns; ``Dh``
    halves the occupancy of one column; ``Ds`` leaves a single atom in it. Sites are
    chosen among the columns with the fewest projected neighbours (corners and edges,
    the high-energy sites the paper alters), never on the interface layer.

    Returns
    -------
    atoms : ase.Atoms
    altered : list of [x, y]
        Projected positions of the altered columns.
    """
    if defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; choose one of {DEFECTS}")
    if defect == "D0":
        return particle, []
    pos = particle.positions
    columns = projected_columns(pos)
    centres = np.array([pos[c, :2].mean(axis=0) for c in columns])
    bottom = centres[:, 1] < centres[:, 1].min() + 0.5
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    neighbours = ((d > 0.1) & (d < 3.0)).sum(axis=1)
    candidates = np.flatnonzero(~bottom & (np.array([len(c) for c in columns]) >= 2))
    if len(candidates) == 0:
        return particle, []
    score = neighbours[candidates]
    exposed = candidates[score <= score.min() + 1]
    n_sites = 2 if defect == "D2" else 1
    chosen = rng.choice(exposed, size=min(n_sites, len(exposed)), replace=False)
    remove: list[int] = []
    for k in chosen:
        idx = columns[k][np.argsort(pos[columns[k], 2])]
        if defect in ("D1", "D2"):
            remove.extend(idx)
        elif defect == "Dh":
            remove.extend(idx[: len(idx) // 2])
        else:  # Ds: keep the middle atom of the column
            remove.extend(np.delete(idx, len(idx) // 2))
    keep = np.ones(len(particle), bool)
    keep[remove] = False
    return particle[keep], centres[chosen].tolist()


def add_interface_column(particle: Atoms) -> Atoms:
    """Extend the bottom layer by one column at its edge (seed 003 PtNp2 versus PtNp1)."""
    pos = particle.positions
    columns = projected_columns(pos)
    centres = np.array([pos[c, :2].mean(axis=0) for c in columns])
    bottom = np.flatnonzero(centres[:, 1] < centres[:, 1].min() + 0.5)
    order = bottom[np.argsort(centres[bottom, 0])]
    edge, inner = order[-1], order[-2]
    shift = centres[edge] - centres[inner]
    new = pos[columns[edge]] + np.array([shift[0], shift[1], 0.0])
    return particle + Atoms(["Pt"] * len(new), positions=new)


def rotate_about_center(positions: np.ndarray, tilt_x_deg: float, tilt_y_deg: float, center) -> np.ndarray:
    """Rotate positions about the x then the y axis through ``center`` (specimen tilt)."""
    ax, ay = np.radians(tilt_x_deg), np.radians(tilt_y_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    return (positions - center) @ (ry @ rx).T + center


def supported_pt_on_ceo2(
    rng: np.random.Generator,
    *,
    extent: float,
    support_thickness: float,
    particle_atoms: int,
    tilt_x: float,
    tilt_y: float,
    defect: str = "D0",
    interface_column: bool = False,
    support_step: bool = False,
    min_vacuum: float = 10.0,
) -> SupportedParticle:
    """Build one Pt/CeO2 model of seed 003 appendix A.3 in a square cell of side ``extent``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the shape jitter, the particle position and the defect site.
    extent : float
        Side of the cell in x and y [Å]; rounded to whole CeO2 periods along x.
    support_thickness : float
        CeO2 thickness along the beam [Å] (3-6 nm in the paper).
    particle_atoms : int
        Approximate atom count of the untruncated Pt particle.
    tilt_x, tilt_y : float
        Specimen tilt about x and y [degrees] (0-4 in the paper).
    defect : str
        One of ``D0``, ``D1``, ``D2``, ``Dh``, ``Ds``.
    interface_column : bool
        Add an extra column at the Pt/CeO2 interface (PtNp2).
    support_step : bool
        Give the support surface a one-trilayer step.
    min_vacuum : float
        Vacuum kept above the particle [Å]; the support is made thinner in y if needed.
    """
    d111 = CEO2_A / np.sqrt(3)
    particle = pt_particle(particle_atoms, rng, truncation_layers=int(rng.integers(1, 3)))
    particle, altered = apply_defect(particle, defect, rng)
    if interface_column:
        particle = add_interface_column(particle)
    p_height = np.ptp(particle.positions[:, 1])
    y0, gap = 3.0, 2.3  # bottom margin; Pt-layer height above the O surface plane
    free = extent - y0 - gap - p_height - min_vacuum
    trilayers = int(np.clip(np.floor(free / d111) + 1, 2, 6))
    px = CEO2_A * np.sqrt(6)
    lx = max(1, int(round(extent / px))) * px
    step = None
    if support_step:
        start = rng.uniform(0, lx)
        step = (start, start + lx / 3)
    margin = 0.2 * lx
    support, y_top = ceo2_support(lx, support_thickness, trilayers, y0=y0, margin_x=margin, step=step)
    thickness = support.cell.lengths()[2]
    ppos = particle.positions.copy()
    x_span = np.ptp(ppos[:, 0])
    shift = np.array(
        [rng.uniform(0.25 * lx, max(0.25 * lx, 0.75 * lx - x_span)), y_top + gap, (thickness - np.ptp(ppos[:, 2])) / 2]
    )
    ppos += shift
    model = support + Atoms(["Pt"] * len(ppos), positions=ppos)
    is_pt = np.array(model.get_chemical_symbols()) == "Pt"
    pt_cols = [np.flatnonzero(is_pt)[c] for c in projected_columns(ppos)]
    center = np.array([lx / 2, extent / 2, thickness / 2])
    pos = rotate_about_center(model.positions, tilt_x, tilt_y, center)
    inside = (pos[:, 0] >= 0) & (pos[:, 0] < lx)
    col_centres = np.array([pos[c, :2].mean(axis=0) for c in pt_cols])
    sites = [np.append(np.asarray(xy) + shift[:2], center[2]) for xy in altered]
    sites_xy = rotate_about_center(np.array(sites), tilt_x, tilt_y, center)[:, :2] if sites else np.zeros((0, 2))
    pos[:, 2] -= pos[:, 2].min() - 1.0
    lz = pos[:, 2].max() + 1.0
    atoms = Atoms(model.get_chemical_symbols(), positions=pos, cell=[lx, lx, lz], pbc=True)[inside]
    info = {
        "cell_extent_A": float(lx),
        "support_thickness_A": float(thickness),
        "support_trilayers": trilayers,
        "support_step": bool(support_step),
        "particle_atoms": int(is_pt.sum()),
        "particle_height_A": float(p_height),
        "particle_width_A": float(x_span),
        "defect": defect,
        "defect_sites_xy_A": sites_xy.round(3).tolist(),
        "interface_column": bool(interface_column),
        "tilt_x_deg": float(tilt_x),
        "tilt_y_deg": float(tilt_y),
        "n_atoms": len(atoms),
    }
    return SupportedParticle(atoms=atoms, pt_columns=col_centres, info=info)
