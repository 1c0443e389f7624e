"""The README's two set-up commands and CI stay in step; gin/ never shadows gin."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_opens_with_the_two_commands():
    main_job, tests = readme_commands()
    assert "disbench train --model dynamicvae" in main_job and "pip install torch==2.13.0" in main_job
    assert "pytest" in tests and "pip install" in tests


def test_the_numerical_tests_run_again_under_avx2_kernels():
    """A bound that holds on one kind of CPU only must fail on every machine."""
    _, tests = readme_commands()
    assert tests.endswith("python -m pytest -q && ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 "
                          "python -m pytest -q -m numerical")


def test_ci_runs_exactly_the_readme_test_command():
    _, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci
    assert "rm -rf .venv" in ci  # a fresh virtual environment


def test_gin_folder_is_not_a_package():
    assert not (ROOT / "gin" / "__init__.py").exists()
