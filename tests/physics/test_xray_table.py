"""The shipped xraydb table (maxrf.physics.table) against xraydb itself."""

import json

import numpy as np
import pytest
import xraydb

from maxrf.physics import table
from maxrf.physics.constants import _MATRIX, DETECTORS


def test_table_is_what_xraydb_gives_now():
    assert json.loads(table.PATH.read_text()) == table.build()


@pytest.mark.parametrize("z", range(1, table.MAX_Z + 1))
def test_lines_edges_coster_kronig_of_every_element(z):
    sym = xraydb.atomic_symbol(z)
    assert table.atomic_symbol(z) == sym
    assert table.atomic_number(sym) == z
    assert table.atomic_number(xraydb.atomic_name(z)) == z
    assert table.atomic_number(xraydb.atomic_name(z).capitalize()) == z
    assert table.atomic_name(sym) == xraydb.atomic_name(z)
    lines, edges, ck = table.element_data(sym)
    ref_lines = xraydb.xray_lines(sym)
    assert list(lines) == list(ref_lines)
    for name, line in ref_lines.items():
        assert lines[name] == (line.energy, line.intensity, line.initial_level, line.final_level)
    ref_edges = xraydb.xray_edges(sym)
    assert list(edges) == list(ref_edges)
    for name, edge in ref_edges.items():
        assert edges[name] == (edge.energy, edge.fyield, edge.jump_ratio)
    if all(k in ref_edges for k in ("L1", "L2", "L3")):
        for a, b in (("L1", "L2"), ("L1", "L3"), ("L2", "L3")):
            assert ck[(a, b)] == xraydb.ck_probability(sym, a, b, total=True)
    else:
        assert ck == {}


def test_unknown_elements_raise():
    for bad in ("Xx", "", "26", "ironx"):
        with pytest.raises(ValueError):
            table.atomic_number(bad)
    with pytest.raises(ValueError):
        table.atomic_symbol(table.MAX_Z + 1)


@pytest.mark.filterwarnings("ignore:Elam tables are unreliable")
@pytest.mark.parametrize("element", ["Be", *DETECTORS, "N", "O", "Ar", "C", "H"])
@pytest.mark.parametrize("kind", ["photo", "coh", "incoh", "total"])
def test_cross_sections_equal_xraydb(element, kind):
    assert table.has_cross_sections(element)
    grid = np.geomspace(50.0, 9e5, 700)  # beyond both clipping limits
    tab = table._elam(element)
    on_table = np.exp(tab[("photo" if kind == "total" else kind) + "_log_energy"][::3])  # tabulated points
    for e in (grid, on_table, np.array([1740.0, 1839.0, 11103.0])):  # near the Si and Ge edges
        with np.errstate(all="ignore"):
            ref = np.atleast_1d(xraydb.mu_elam(element, e, kind=kind))
        np.testing.assert_allclose(table.mu_elam(element, e, kind=kind), ref, rtol=1e-12)


@pytest.mark.parametrize("kind", ["total", "photo", "coh", "incoh"])
def test_materials_equal_xraydb(kind):
    e = np.geomspace(100.0, 5e4, 400)
    formula, rho = _MATRIX
    np.testing.assert_allclose(table.material_mu("air", e, kind=kind),
                               xraydb.material_mu("air", e, kind=kind), rtol=1e-12)
    np.testing.assert_allclose(table.material_mu(formula, e, density=rho, kind=kind),
                               xraydb.material_mu(formula, e, density=rho, kind=kind), rtol=1e-12)
    assert table.atomic_density("Be") == xraydb.atomic_density("Be")
    # outside the table: xraydb's own answer
    np.testing.assert_allclose(table.mu_elam("Pb", e, kind=kind), xraydb.mu_elam("Pb", e, kind=kind))
