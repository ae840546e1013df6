"""CoDi (diffedu.distill.codi): zero-init identity, the loss against closed forms, the sampler
against the teacher's own Tweedie estimate, the shipped adapter, and bad input."""
import pytest
import torch

import diffedu as dd
from diffedu.data.images import digits
from diffedu.distill import codi
from diffedu.nets.control import low_res
from diffedu.schedules import get_schedule
from diffedu.train.checkpoints import checkpoint_path

SCHED = get_schedule("linear", 1000)


@pytest.fixture(scope="module")
def base():
    return dd.pretrained("unet_digits")


class PointModel(torch.nn.Module):
    """The exact eps-predictor of data that is one image x*: eps(z, t) = (z - sqrt(ab_t) x*) / sqrt(1 - ab_t),
    so its Tweedie estimate is x* at every level (exactly self-consistent). `shift` adds a wrong offset."""

    def __init__(self, x_star, shift=0.0):
        super().__init__()
        self.x_star, self.shift, self.ab = x_star, shift, SCHED.alpha_bar

    def forward(self, z, t, cond=None, hint=None):
        ab = self.ab[t].to(z).reshape(-1, 1, 1, 1)
        return (z - ab.sqrt() * self.x_star) / (1 - ab).sqrt() + self.shift


class WithBase(PointModel):
    @property
    def base(self):
        return PointModel(self.x_star, self.shift)


def test_zero_init_student_is_the_teacher(base):
    student = codi.codi_student(base)
    g = torch.Generator().manual_seed(0)
    x, hint = torch.randn(3, 1, 16, 16, generator=g), torch.rand(3, 1, 16, 16, generator=g)
    t, y = torch.tensor([5, 400, 999]), torch.full((3,), codi.NULL)
    with torch.no_grad():
        assert torch.equal(student(x, t, y, hint), base(x, t, y))
    # ... and the gradient still reaches the zero convs (ControlNet's section 3.1)
    student(x, t, y, hint).pow(2).mean().backward()
    assert student.controlnet.zero_convs[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in student.base.parameters())


def test_hint_is_the_upsampled_measurement():
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    y = codi.lowres_operator().A(x)
    assert y.shape == (2, 1, 4, 4)
    torch.testing.assert_close(codi.hint_of(y), low_res(x, 4))          # peer: chapter 12's thumbnail
    torch.testing.assert_close(y[0, 0, 1, 2], x[0, 0, 4:8, 8:12].mean())


def test_grids():
    assert codi.timestep_grid(4).tolist() == [0, 250, 500, 749, 999]
    assert codi.sample_levels(1) == [600]
    assert codi.sample_levels(4) == [600, 450, 300, 150]
    assert codi.sample_levels(4, t_max=999) == [999, 749, 500, 250]


@pytest.mark.parametrize("ode", ["self", "teacher"])
def test_loss_vanishes_for_the_exact_one_point_model(ode):
    """One-image data: the exact model is consistent along its PF-ODE and predicts the true noise,
    so both terms are 0; a wrong offset of 0.1 gives L_diff = 0.01 exactly and L_cons > 0."""
    g = torch.Generator().manual_seed(1)
    x_star = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    x, hint, grid = x_star.repeat(16, 1, 1, 1), torch.zeros(16, 1, 16, 16, dtype=torch.float64), codi.timestep_grid(10)
    exact = WithBase(x_star)
    loss, parts = codi.codi_loss(exact, exact, x, hint, SCHED, grid, g, lam=0.5, ode=ode)
    assert abs(parts["cons"]) < 1e-12 and abs(parts["diff"]) < 1e-12 and float(loss) < 1e-12
    wrong = WithBase(x_star, shift=0.1)
    loss, parts = codi.codi_loss(wrong, exact, x, hint, SCHED, grid, g, lam=0.5, ode=ode)
    assert parts["diff"] == pytest.approx(0.01, rel=1e-9)
    assert parts["cons"] == pytest.approx(0.01, rel=1e-9)               # target = exact x*: eps^- = true eps
    assert float(loss) == pytest.approx(parts["cons"] + 0.5 * parts["diff"], rel=1e-9)


def test_noise_space_loss_is_snr_weighted_x_loss():
    """L_cons (snr_floor 0) = mean over rows of SNR_t ||x_theta - x^-||^2 / D: checked on the one-point
    target with a student that is off by a constant image d in x (eps off by -sqrt(ab/(1-ab)) d)."""
    g = torch.Generator().manual_seed(2)
    x_star = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    x, hint, grid = x_star.repeat(8, 1, 1, 1), torch.zeros(8, 1, 16, 16, dtype=torch.float64), codi.timestep_grid(5)
    exact = WithBase(x_star)
    student = WithBase(x_star + 0.05)                                     # x_theta = x* + 0.05 everywhere
    _, parts = codi.codi_loss(student, exact, x, hint, SCHED, grid, torch.Generator().manual_seed(3), lam=0.0)
    n = torch.randint(1, len(grid), (8,), generator=torch.Generator().manual_seed(3))
    ab = SCHED.alpha_bar[grid[n]]
    assert parts["cons"] == pytest.approx(float((ab / (1 - ab)).mean() * 0.05 ** 2), rel=1e-9)


def test_one_step_sample_of_the_zero_init_student_is_the_teachers_tweedie_estimate(base):
    student = codi.codi_student(base).eval()
    hint = torch.rand(2, 1, 16, 16)
    z = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    out = codi.codi_sample(student, hint, 1, x_T=z, clip=False, t_max=999)
    ab = SCHED.alpha_bar[999]
    with torch.no_grad():
        ref = (z - (1 - ab).sqrt().float() * base(z, torch.full((2,), 999), torch.full((2,), 10))) / ab.sqrt().float()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-4)


def test_shipped_student_follows_the_condition():
    path = checkpoint_path("distill/digits/codi_lowres")
    assert path.stat().st_size <= 1.5e6
    student = codi.load_codi()
    assert student.controlnet.base_name == "unet_digits"
    x, labels = digits(16, "test")
    x, labels = x[:16], labels[:16]
    y = codi.lowres_operator().A(x)
    g = torch.Generator().manual_seed(0)
    s = codi.scores(codi.codi_sample(student, codi.hint_of(y), 2, generator=g), x, labels)
    t = codi.scores(codi.teacher_sample(codi.hint_of(y), 2, torch.Generator().manual_seed(0)), x, labels)
    assert s["meas PSNR"] > t["meas PSNR"] + 5                # the teacher ignores y; the student follows it
    assert s["accuracy"] > t["accuracy"] + 0.3


def test_scores_diversity_and_bad_input():
    truth = torch.zeros(2, 1, 16, 16)
    same = codi.scores(truth.repeat(3, 1, 1, 1), truth, torch.tensor([0, 1]), k=3)
    assert same["std"] == 0.0 and same["meas PSNR"] == float("inf")
    with pytest.raises(ValueError, match="k = 2"):
        codi.scores(truth, truth, torch.tensor([0, 1]), k=2)


def test_bad_input(base):
    student = codi.codi_student(base)
    hint = torch.zeros(1, 1, 16, 16)
    with pytest.raises(ValueError, match="steps"):
        codi.codi_sample(student, hint, 0)
    with pytest.raises(ValueError, match="hint"):
        codi.codi_sample(student, torch.zeros(16, 16), 1)
    with pytest.raises(TypeError, match="ControlledUNet"):
        codi.codi_sample(base, hint, 1)
    with pytest.raises(ValueError, match="t_max"):
        codi.codi_sample(student, hint, 1, t_max=1000)
    with pytest.raises(ValueError, match="x_T"):
        codi.codi_sample(student, hint, 1, x_T=torch.zeros(2, 1, 16, 16))
    with pytest.raises(TypeError, match="adapter"):
        codi.codi_student(base, adapter=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="ode"):
        codi.codi_loss(student, student, hint, hint, SCHED, codi.timestep_grid(4), ode="euler")
    with pytest.raises(ValueError, match="mu"):
        codi.train_codi(mu=1.0)
    with pytest.raises(ValueError, match="N"):
        codi.timestep_grid(0)
