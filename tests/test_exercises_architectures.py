"""The exercises of chapter 06: references agree with the package, wrong answers fail."""

from diffedu import exercises as ex
from diffedu.exercises import architectures

NAMES = [e.name for e in architectures.EXERCISES]


def test_references_agree_with_the_package():
    architectures._self_check()


def test_registered_with_their_chapter():
    assert len(NAMES) >= 3
    assert {ex.EXERCISES[n].chapter for n in NAMES} == {"06"}
    assert all(n in " ".join(ex.list_exercises("06")) for n in NAMES)




def test_common_mistakes_fail(capsys):
    # patchify by a plain reshape (wrong pixel order) and sin-first embeddings are caught
    def naive_patchify(x, p):
        B, C, H, W = x.shape
        return x.reshape(B, (H // p) * (W // p), p * p * C)

    def sin_first(t, dim):
        emb = architectures.timestep_embedding(t, dim)
        half = dim // 2
        return emb[:, list(range(half, 2 * half)) + list(range(half))]

    assert not ex.check("patchify", naive_patchify)
    assert not ex.check("timestep_embedding", sin_first)
