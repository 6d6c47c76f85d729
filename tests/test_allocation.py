"""Per-scale step allocation (wsgm.allocation): the search against brute force, budgets exact."""

import itertools

import pytest

from wsgm import allocation, theory
from wsgm import sde as sde_lib
from wsgm.nets.receptive_field import model_side
from wsgm.steps import Steps

VP = {"name": "vp", "T": 1.0, "eps": 1e-3, "beta_min": 0.1, "beta_max": 20.0}


@pytest.fixture(scope="module")
def sde():
    return sde_lib.build(VP)


@pytest.fixture(scope="module")
def problems(sde):
    return {s: allocation.Problem.field(16, 2, sde, sampler=s, grid="logsnr") for s in ("em", "dpmpp_2m")}


def test_model_sides():
    assert [model_side(16, 2, j) for j in range(3)] == [8, 4, 4]
    assert [model_side(64, 4, j) for j in range(5)] == [32, 16, 8, 4, 4]
    assert model_side(32, 0, 0) == 32


def test_budget_accounting(sde, problems):
    p = problems["em"]
    assert p.pixels == [64, 16, 16] and p.nfe_per_step == 1
    assert p.cost([3, 5, 7]) == 3 * 64 + 5 * 16 + 7 * 16
    assert p.equal_steps(p.cost([4, 4, 4])) == 4 and p.equal_steps(p.cost([4, 4, 4]) - 1) == 3
    heun = allocation.Problem.field(16, 2, sde, sampler="heun")
    assert heun.cost([3, 5, 7]) == 2 * (3 * 64 + 5 * 16 + 7 * 16)
    # every feasible allocation, and only those: n_j >= 1, cost <= budget
    budget = 200
    got = set(allocation.feasible(p, budget))
    want = {s for s in itertools.product(range(1, 5), range(1, 10), range(1, 10)) if p.cost(s) <= budget}
    assert got == want
    for budget in (150, 300, 517):
        r = allocation.best_allocation(budget, p)
        assert r["cost"] == p.cost(r["steps"]) <= budget
        assert r["equal"]["cost"] == p.cost(r["equal"]["steps"]) <= budget
        assert r["equal"]["cost"] + p.cost([1, 1, 1]) > budget  # one more equal step would not fit
    with pytest.raises(ValueError, match="one step at every scale"):
        allocation.best_allocation(p.cost([1, 1, 1]) - 1, p)


def test_error_is_the_theory(sde, problems):
    """The memoized per-scale error equals wsgm.theory's, and an int setting means equal steps."""
    p = problems["dpmpp_2m"]
    steps = [3, 6, 2]
    assert p.error(steps) == pytest.approx(
        theory.errors(p.models, p.stats, sde, steps, "dpmpp_2m", "logsnr")["spectrum"], rel=1e-10)
    assert theory.errors(p.models, p.stats, sde, Steps("3-6-2"), "dpmpp_2m", "logsnr")["spectrum"] == \
        pytest.approx(p.error(steps), rel=1e-10)
    assert theory.errors(p.models, p.stats, sde, 5, "dpmpp_2m", "logsnr")["spectrum"] == \
        pytest.approx(p.error([5, 5, 5]), rel=1e-10)


@pytest.mark.parametrize("sampler", ["em", "dpmpp_2m"])
@pytest.mark.parametrize("budget", [288, 480])
def test_search_equals_brute_force(sde, problems, sampler, budget):
    fresh = allocation.Problem.field(16, 2, sde, sampler=sampler, grid="logsnr")  # no brute-force memo to start from
    r = allocation.best_allocation(budget, fresh)
    steps, err = allocation.brute_force(problems[sampler], budget)
    assert r["error"] == pytest.approx(err, rel=1e-12)
    assert r["error"] <= r["equal"]["error"]


@pytest.mark.parametrize("sampler", ["em", "dpmpp_2m"])
def test_never_worse_than_equal(problems, sampler):
    p = problems[sampler]
    for budget in (96, 200, 384, 700, 1200):
        r = allocation.best_allocation(budget, p)
        assert r["error"] <= r["equal"]["error"] and r["gain"] >= 1


def test_budget_to_target(problems):
    p = problems["dpmpp_2m"]
    eq = allocation.equal_budget_to_target(p, 0.1)
    n = p.equal_steps(eq)
    assert p.error([n] * 3) <= 0.1 < p.error([n - 1] * 3)
    opt = allocation.optimal_budget_to_target(p, 0.1, p.cost([1, 1, 1]), eq)
    assert opt <= eq and allocation.best_allocation(opt, p)["error"] <= 0.1
