"""Progressive distillation of the digit teacher (diffedu.distill.images, chapter 13b)."""
import pytest
import torch

import diffedu as dd
from diffedu.denoiser import NetworkDenoiser
from diffedu.distill import images as im
from diffedu.distill import progressive as pd

SCHED = dd.get_schedule("linear", 1000)


def test_level_forms_are_the_cosine_forms():
    """ddim_move_as / pd_target_as at cosine levels are chapter 13's ddim_move / pd_target."""
    g = torch.Generator().manual_seed(0)
    z, x, zpp = (torch.randn(5, 2, generator=g, dtype=torch.float64) for _ in range(3))
    t, s = torch.tensor([1.0, 0.9, 0.5, 0.3, 0.1], dtype=torch.float64), torch.tensor([0.7, 0.5, 0.25, 0.0, 0.05],
                                                                                      dtype=torch.float64)
    a_t, s_t = pd.cosine_alpha_sigma(t)
    a_s, s_s = pd.cosine_alpha_sigma(s)
    torch.testing.assert_close(pd.ddim_move_as(z, x, a_t, s_t, a_s, s_s), pd.ddim_move(z, x, t, s))
    torch.testing.assert_close(pd.pd_target_as(z, zpp, a_t, s_t, a_s, s_s), pd.pd_target(z, zpp, t, s))


@pytest.mark.parametrize("clean", [False, True])
def test_one_step_from_the_target_lands_on_the_two_teacher_steps(clean):
    """On the linear schedule's levels (and a clean t''), one DDIM step from x~ reproduces z_t''."""
    ab = SCHED.alpha_bar.double()
    g = torch.Generator().manual_seed(1)
    z_t, z_pp = torch.randn(4, 1, 4, 4, generator=g, dtype=torch.float64), torch.randn(4, 1, 4, 4, generator=g,
                                                                                       dtype=torch.float64)
    a_t, s_t = ab[999].sqrt(), (1 - ab[999]).sqrt()
    a_pp, s_pp = (torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)) if clean else \
        (ab[937].sqrt(), (1 - ab[937]).sqrt())
    target = pd.pd_target_as(z_t, z_pp, a_t, s_t, a_pp, s_pp)
    torch.testing.assert_close(pd.ddim_move_as(z_t, target, a_t, s_t, a_pp, s_pp), z_pp)
    # and the same step is the package's DDIM update (samplers.ddim_step with eta = 0)
    eps = (z_t - a_t * target) / s_t
    torch.testing.assert_close(dd.samplers.ddim_step(z_t, target, eps, float(ab[999]), float(a_pp ** 2), 0.0), z_pp)


def test_trailing_grids_nest():
    """Entry j of the N/2-step grid is entry 2j + 1 of the N-step grid; every grid ends at 999."""
    for N in (64, 32, 16, 8, 4, 2):
        big, _ = im.grid(SCHED, N)
        small, ab = im.grid(SCHED, N // 2)
        assert torch.equal(small, big[1::2]) and int(small[-1]) == 999
        torch.testing.assert_close(ab, SCHED.alpha_bar.double()[small])
    for bad in (3, 0, 2048):
        with pytest.raises(ValueError, match="N"):
            im.grid(SCHED, bad)


class _ConstX0(torch.nn.Module):
    """A teacher network predicting x0 = c everywhere (its DDIM steps compose in closed form)."""
    prediction = "x0"

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x, t, cond=None):
        return self.c.expand_as(x).to(x.dtype)


def test_pd_loss_is_zero_exactly_for_the_right_student():
    """With x0_hat = c for the teacher, two DDIM steps keep x0 = c, so x~ = c: a student whose
    x_hat is c has zero loss, one whose x_hat is c + 0.1 has loss 0.01 max(SNR, 1) on average."""
    c = torch.linspace(-0.8, 0.8, 16).reshape(1, 1, 4, 4)
    teacher = NetworkDenoiser(_ConstX0(c), SCHED, clip=1.0)
    ab = SCHED.alpha_bar.double()

    def student(shift):
        def v(z, t, y, force_drop_ids=None):              # x_hat = a z - s v = c + shift
            a, s = ab[t].sqrt().view(-1, 1, 1, 1).to(z), (1 - ab[t]).sqrt().view(-1, 1, 1, 1).to(z)
            return (a * z - c - shift) / s
        return v
    x, y = torch.zeros(64, 1, 4, 4), torch.zeros(64, dtype=torch.long)
    for N in (2, 8, 64):
        loss0 = im.pd_image_loss(student(0.0), teacher, x, y, N, torch.Generator().manual_seed(2))
        assert float(loss0) < 1e-8
    # N = 2: the student's one step is t = 999 -> clean, where max(SNR, 1) = 1; N = 64 mixes levels
    loss = im.pd_image_loss(student(0.1), teacher, x, y, 2, torch.Generator().manual_seed(2))
    assert float(loss) == pytest.approx(0.01, rel=1e-4)
    loss = im.pd_image_loss(student(0.1), teacher, x, y, 64, torch.Generator().manual_seed(2))
    assert float(loss) > 0.01 * 1.5                    # low-noise rows weigh SNR > 1


def test_new_student_copies_the_teacher_and_reads_v():
    teacher = im.digit_teacher()
    st = im.new_student(teacher)
    assert st.prediction == "v" and st.model is not teacher.model and st.schedule is teacher.schedule
    z, t, y = torch.randn(2, 1, 16, 16), torch.tensor([10, 900]), torch.tensor([3, im.NULL])
    with torch.no_grad():
        torch.testing.assert_close(st.model(z, t, y), teacher.model(z, t, y))
        # at low noise v ~ eps, so the copy's x0 is close to the teacher's; at t = 999 it is not
        x0_s, _ = st.x0_eps(z, t, cond=y)
        x0_t, _ = teacher.x0_eps(z, t, cond=y)
    assert (x0_s[0] - x0_t[0]).abs().max() < 0.05 < (x0_s[1] - x0_t[1]).abs().max()


def test_a_short_stage_runs_and_refuses_bad_input():
    teacher = im.digit_teacher()
    st, losses = im.distill_stage(teacher, 64, steps=2, batch_size=4)
    assert isinstance(st, NetworkDenoiser) and st.prediction == "v" and len(losses) == 2
    assert not any(p.requires_grad for p in teacher.model.parameters())
    with pytest.raises(ValueError, match="power of two"):
        im.distill_stage(teacher, 6, steps=1)
    with pytest.raises(ValueError, match="at least 2"):
        im.distill_stage(teacher, 1, steps=1)
    with pytest.raises(TypeError, match="NetworkDenoiser"):
        im.distill_stage(lambda x, t: x, 4, steps=1)
    with pytest.raises(ValueError, match="steps"):
        im.distill_stage(teacher, 4, steps=0)
    with pytest.raises(TypeError, match="NetworkDenoiser"):
        im.bind("unet", torch.zeros(2))
    with pytest.raises(ValueError, match="one step count per stage"):
        im.progressive_digits(64, 4, steps=(1, 1))


def test_fd_proxy_matches_the_perceptual_module_and_its_floor():
    """fd_proxy with precomputed features is perceptual.frechet_distance (the peer); a set against
    itself is ~0; the classifier reads the held-out test digits correctly."""
    from diffedu.inverse.blind.perceptual import features, frechet_distance
    xtr, _ = dd.data.images.digits(16, "train")
    xte, yte = dd.data.images.digits(16, "test")
    ftr = features(xtr)
    assert im.fd_proxy(xte, ftr) == pytest.approx(frechet_distance(xte, xtr), rel=1e-6)
    assert im.fd_proxy(xte, xte) < 1e-5 < im.fd_proxy(xte, xtr)
    assert im.class_accuracy(xte, yte) > 0.95
    assert im.class_accuracy(xte, (yte + 1) % 10) < 0.05
    with pytest.raises(ValueError, match="x"):
        im.fd_proxy(xte[0], ftr)


def test_the_13b_exercise_refuses_plausible_wrong_answers():
    """The reference passes; forgetting the second teacher step, or the sigma ratio on alpha_t, fails."""
    from diffedu import exercises as ex
    from diffedu.exercises.distill import pd_two_step_target as ref
    assert ex.check("pd_two_step_target", ref, verbose=False)

    def one_step(z_t, x0_t, x0_tp, ab_t, ab_tp, ab_tpp):        # the teacher's first x0 guess as the target
        return x0_t

    def no_ratio(z_t, x0_t, x0_tp, ab_t, ab_tp, ab_tpp):
        a_t, a_pp, r = ab_t ** 0.5, ab_tpp ** 0.5, ((1 - ab_tpp) / (1 - ab_t)) ** 0.5
        z_tpp = ref(z_t, x0_t, x0_tp, ab_t, ab_tp, ab_tpp) * (a_pp - r * a_t) + r * z_t
        return (z_tpp - r * z_t) / a_pp
    for wrong in (one_step, no_ratio):
        assert not ex.check("pd_two_step_target", wrong, verbose=False)


def test_shipped_digit_students_load_and_reproduce_their_quality():
    """pd_digits_1 and pd_digits_4: v-predicting unet_tiny on the teacher's schedule, a complete manifest whose
    command the script runs, and the recorded FD / accuracy (seed 0) reproduced; out of chapter 13's listing."""
    from diffedu.distill import train as dt
    from diffedu.train import read_manifest
    from pathlib import Path
    script = (Path(__file__).parents[1] / "scripts" / "train_distill.sh").read_text()
    ftr, _, yte, _ = im.reference()
    for n in (1, 4):
        st = im.load_digit_student(f"pd_digits_{n}")
        m = read_manifest(dt.STUDENTS_DIR / "digits" / f"pd_digits_{n}.safetensors")
        assert st.prediction == "v" and st.schedule.name == "linear" and m["sampler_steps"] == n
        assert m["command"].replace("python -m", "$PY -m") in script
        assert not any(p.requires_grad for p in st.model.parameters())
        q = im.score(im.ddim_digits(st, im.eval_noise(0), yte, n), yte, ftr)
        assert q["fd"] == pytest.approx(m["quality"]["seed0"]["fd"], abs=2e-3)
        assert q["acc"] == pytest.approx(m["quality"]["seed0"]["acc"], abs=0.01)
    assert not any("digits" in s for s in dt.shipped_students())
