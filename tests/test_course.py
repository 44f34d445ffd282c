"""The course tooling: stubs, student notebooks in sync, checks, and the outputs policy."""

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from facelib.course import Exercise, Status, expect, lesson00, student


def test_stub_replaces_the_marked_block_at_its_indentation():
    source = "def f(x):\n    '''doc'''\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\n"
    assert student.stub_source(source) == "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError"


@pytest.mark.parametrize("source", ["x = 1", "# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION", "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION"])
def test_stub_rejects_broken_markers(source):
    with pytest.raises(student.NotebookFormatError):
        student.stub_source(source)


def test_student_notebooks_are_in_sync_with_solutions():
    assert student.lessons(), "no solution notebooks found"
    problems = student.stale()
    assert not problems, f"run `python -m facelib.course build`: {problems}"


def test_student_notebooks_hold_stubs_and_no_outputs():
    for path in student.lessons():
        nb = nbformat.read(student.NOTEBOOKS_DIR / path.name, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} has stored outputs"
        stubs = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
        assert stubs, f"{path.name} has no exercise"
        for cell in stubs:
            assert "BEGIN SOLUTION" not in cell.source and cell.source.rstrip().endswith("raise NotImplementedError")


def test_solution_outputs_are_light_and_every_check_says_correct():
    for path in student.lessons():
        nb = nbformat.read(path, as_version=4)
        assert path.stat().st_size < 1_500_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB: trim its outputs"
        checks = [c for c in nb.cells if "nbval-check-output" in c.metadata.get("tags", [])]
        assert checks, f"{path.name} has no check cell"
        for cell in checks:
            text = "".join(o.get("text", "") for o in cell.outputs)
            assert "correct" in text and "\u2717" not in text, f"{path.name}: a stored check does not say correct: {text!r}"


def test_not_attempted_exercise_lets_the_student_notebook_run_to_the_end(tmp_path):
    path = student.NOTEBOOKS_DIR / "00_welcome.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells if c.cell_type == "code"]
    assert any("not attempted yet" in text for text in outputs)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


def _square_exercise():
    def test(answer):
        out = answer(torch.tensor([1.0, -2.0, 3.0]))
        expect(isinstance(out, torch.Tensor), "return a tensor")
        expect(torch.allclose(out, torch.tensor([1.0, 4.0, 9.0])), "some values are off: square each entry")

    return Exercise("square", reference=lambda x: x * x, test=test)


def test_check_says_correct_and_returns_the_answer(capsys):
    ex = _square_exercise()

    def answer(x):
        return x**2

    assert ex.check(answer) is answer
    assert ex.status is Status.CORRECT and "correct" in capsys.readouterr().out


def test_check_falls_back_to_the_reference_when_not_attempted(capsys):
    ex = _square_exercise()

    def answer(x):
        raise NotImplementedError

    assert ex.check(answer) is ex.reference
    assert ex.status is Status.NOT_ATTEMPTED and "not attempted yet" in capsys.readouterr().out


def test_check_says_what_is_wrong_without_the_answer(capsys):
    ex = _square_exercise()
    assert ex.check(lambda x: x * 2) is ex.reference
    out = capsys.readouterr().out
    assert ex.status is Status.WRONG and "some values are off" in out and "4.0" not in out and "9.0" not in out


def test_check_reports_a_crash_in_the_answer():
    ex = _square_exercise()
    status, message = ex.evaluate(lambda x: x.undefined_method())
    assert status is Status.WRONG and "AttributeError" in message


def test_lesson00_exercise_catches_the_common_mistakes():
    ex = lesson00.image_to_tensor_exercise
    assert ex.evaluate(lesson00.image_to_tensor)[0] is Status.CORRECT
    assert "channels should come first" in ex.evaluate(lambda im: im.float() / 255)[1]
    assert "[0, 1]" in ex.evaluate(lambda im: im.permute(2, 0, 1).float())[1]
    assert "float32" in ex.evaluate(lambda im: im.permute(2, 0, 1).double() / 255)[1]


def test_lesson05_atomic_save_check_catches_in_place_writes():
    import io

    import torch

    from facelib.course import lesson05

    ex = lesson05.save_atomically_exercise
    assert ex.evaluate(lesson05.save_atomically)[0] is Status.CORRECT

    def plain(payload, path):  # torch.save straight onto the checkpoint
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        return path

    def buffered(payload, path):  # serialised in memory first, then written in place: still not atomic
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path.write_bytes(buffer.getvalue())
        return path

    assert "destroyed the previous checkpoint" in ex.evaluate(plain)[1]
    status, message = ex.evaluate(buffered)
    assert status is Status.WRONG and "overwritten in place" in message


def test_lesson05_adversarial_step_check_catches_the_common_mistakes():
    from facelib.course import lesson05
    from facelib.losses import critic_loss, generator_loss

    ex = lesson05.adversarial_step_exercise
    assert ex.evaluate(lesson05.adversarial_step)[0] is Status.CORRECT

    def make(*, stale_critic=False, zero_grad=True, rng_used=True, one_critic_step=False):
        def step(gen, critic, g_opt, c_opt, real, inputs, critic_steps=1, penalty_weight=10.0, rng=None):
            fake = gen(inputs)
            if stale_critic:  # the generator scored by the critic before its update
                g_loss = generator_loss(critic, fake)
                g_opt.zero_grad()
                g_loss.backward(retain_graph=True)
                grads = [p.grad.clone() for p in gen.parameters()]
            for _ in range(1 if one_critic_step else critic_steps):
                c_loss, _ = critic_loss(critic, real, fake, penalty_weight, generator=rng if rng_used else None)
                if zero_grad:
                    c_opt.zero_grad()
                c_loss.backward()
                c_opt.step()
            if stale_critic:
                for p, g in zip(gen.parameters(), grads):
                    p.grad = g
            else:
                g_loss = generator_loss(critic, fake)
                if zero_grad:
                    g_opt.zero_grad()
                g_loss.backward()
            g_opt.step()
            return {"critic": float(c_loss.detach()), "generator": float(g_loss.detach())}
        return step

    assert ex.evaluate(make())[0] is Status.CORRECT
    assert "updated critic" in ex.evaluate(make(stale_critic=True))[1]
    assert "zero each optimiser's gradients" in ex.evaluate(make(zero_grad=False))[1]
    assert "critic_steps=3" in ex.evaluate(make(one_critic_step=True))[1]
    assert "generator=rng" in ex.evaluate(make(rng_used=False))[1]


def test_lesson02_to_04_checks_on_the_papers_parts_catch_the_common_mistakes():
    import torch
    import torch.nn.functional as F

    from facelib.course import lesson02, lesson03, lesson04
    from facelib.render.sample import sample_image

    ex = lesson02.res_block_exercise
    assert ex.evaluate(lesson02.res_block)[0] is Status.CORRECT
    no_skip = lambda x, lap, c1, c2, s: F.elu(lesson02.cheb_conv(F.elu(lesson02.cheb_conv(x, lap, *c1)), lap, *c2))  # noqa: E731
    assert "shortcut is missing" in ex.evaluate(no_skip)[1]

    ex = lesson03.vertex_colors_exercise
    assert ex.evaluate(lesson03.vertex_colors)[0] is Status.CORRECT

    def no_depth_test(image, screen, zbuf, normals, points, camera_distance=10.0, tolerance=0.01):
        x, y, _ = screen.unbind(-1)
        inside = (x >= 0) & (x < zbuf.shape[2]) & (y >= 0) & (y < zbuf.shape[1])
        camera = torch.tensor([0.0, 0.0, camera_distance], dtype=points.dtype)
        vis = (inside & ((normals * (camera - points)).sum(-1) > 0)).to(image.dtype)
        return sample_image(image, screen[..., :2]) * vis[..., None], vis

    assert "behind the surface" in ex.evaluate(no_depth_test)[1]

    ex = lesson04.vertex_losses_exercise
    assert ex.evaluate(lesson04.vertex_losses)[0] is Status.CORRECT

    def no_hidden_term(t, refined, tp, shaded, vis, shaded_3dmm, hidden_weight=0.3):
        v = vis[..., None]
        return (t - refined).abs().mean(), ((tp - shaded).abs() * v).sum() / (3 * v.sum())

    assert "hidden vertices' term is missing" in ex.evaluate(no_hidden_term)[1]


def test_lesson06_residual_albedo_check_catches_the_common_mistakes():
    import torch

    from facelib.course import lesson06

    ex = lesson06.residual_albedo_exercise
    assert ex.evaluate(lesson06.residual_albedo)[0] is Status.CORRECT

    def start(t, c, d):
        return t + c[..., None] * (d - t)

    def no_tanh(t, c, d, z):
        return (start(t, c, d) + z).clamp(0, 1)

    def no_clamp(t, c, d, z):
        return start(t, c, d) + torch.tanh(z)

    def photo_start(t, c, d, z):  # starts at the de-lit photo everywhere, ignoring the confidence
        return (d + torch.tanh(z)).clamp(0, 1)

    def paper_output(t, c, d, z):  # the paper's tanh read as the albedo itself
        return (torch.tanh(z) + 1) / 2

    assert "squash it with tanh" in ex.evaluate(no_tanh)[1]
    assert "[0, 1]" in ex.evaluate(no_clamp)[1]
    assert "c = 0" in ex.evaluate(photo_start)[1]
    assert ex.evaluate(paper_output)[0] is Status.WRONG
