"""exact.coupling: crossings of the straight training lines of a coupling."""
import pytest
import torch

from diffedu import flow
from diffedu.data import toy_gmm
from diffedu.exact.coupling import crossing_fraction


def test_small_cases():
    # an X crosses; parallel, touching-at-an-end and disjoint segments do not
    assert crossing_fraction(torch.tensor([[0., 0], [0, 1]]), torch.tensor([[1., 1], [1, 0]])) == 1.0
    assert crossing_fraction(torch.tensor([[0., 0], [0, 1]]), torch.tensor([[1., 0], [1, 1]])) == 0.0
    assert crossing_fraction(torch.tensor([[0., 0], [1, 0]]), torch.tensor([[1., 0], [2, 5]])) == 0.0
    assert crossing_fraction(torch.tensor([[0., 0], [5, 5]]), torch.tensor([[1., 1], [6, 4]])) == 0.0
    # three segments: the first crosses the other two, which do not cross
    x0 = torch.tensor([[0., 0], [0, 1], [0, 2]])
    x1 = torch.tensor([[2., 2], [2, 1.5], [2, 1.8]])
    assert crossing_fraction(x0, x1) == pytest.approx(2 / 3)


def test_ode_coupling_crosses_less_than_independent_pairs():
    gmm = toy_gmm()
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(300, 2, generator=g, dtype=torch.float64)
    x0_ode = flow.sample_flow(flow.gmm_velocity(gmm), x1, 40, "heun")
    independent = crossing_fraction(gmm.sample(300, g).double(), x1)
    assert crossing_fraction(x0_ode, x1) < 0.1 * independent


def test_input_validation():
    with pytest.raises(ValueError, match="shape"):
        crossing_fraction(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="shape"):
        crossing_fraction(torch.zeros(3, 3), torch.zeros(3, 3))
