"""JAX set-up: XLA flags chosen for the installed jaxlib."""

from __future__ import annotations

import jaxlib.version
import pytest

from ibrepro import jaxsetup


@pytest.mark.parametrize("installed, expected", [
    ("0.8.1", (0, 8, 1)), ("0.10.2", (0, 10, 2)), ("0.9.0.dev20260101", (0, 9, 0)), ("0.8.0", (0, 8, 0)),
])
def test_jaxlib_version_parsed(monkeypatch, installed, expected):
    monkeypatch.setattr(jaxlib.version, "__version__", installed)
    assert jaxsetup.jaxlib_version() == expected


def test_ynn_flag_set_only_when_jaxlib_knows_it(monkeypatch, capsys):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.setattr(jaxlib.version, "__version__", "0.8.1")
    jaxsetup.use_all_cores()
    assert f"{jaxsetup.YNN_FLAG}=" in jaxsetup.os.environ["XLA_FLAGS"].split()
    assert capsys.readouterr().err == ""

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.setattr(jaxlib.version, "__version__", "0.8.0")  # aborts on the flag
    jaxsetup.use_all_cores()
    assert jaxsetup.os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and "jaxlib 0.8.0" in note and "0.8.1" in note


def test_user_flags_kept(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"--xla_force_host_platform_device_count=3 {jaxsetup.YNN_FLAG}=dot")
    monkeypatch.setattr(jaxlib.version, "__version__", "0.7.0")  # the user's own choice is left alone
    jaxsetup.use_all_cores()
    assert jaxsetup.os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=3 {jaxsetup.YNN_FLAG}=dot"


@pytest.mark.parametrize("flags", [
    "--xla_force_host_platform_device_count=0",
    "--xla_force_host_platform_device_count=abc",
    "--xla_force_host_platform_device_count=-1",
    "--xla_force_host_platform_device_count=",
    "--xla_force_host_platform_device_count",
    "--xla_force_host_platform_device_count=2 --xla_force_host_platform_device_count=0",
])
def test_a_bad_host_device_count_is_one_line(monkeypatch, tmp_path, flags):
    """XLA would abort with 90 lines of flag help, or fail to start its backend."""
    from typer.testing import CliRunner

    from ibrepro.cli import app

    monkeypatch.setenv("XLA_FLAGS", flags)
    (tmp_path / "x.toml").write_text('name = "x"\ndataset = "tishby12"\n')
    result = CliRunner().invoke(app, ["train", str(tmp_path / "x.toml"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert result.output.count("\n") == 1 and "host device count must be a whole number >= 1" in result.output
    assert jaxsetup.os.environ["XLA_FLAGS"] == flags  # left as the user set it


@pytest.mark.parametrize("flags", ["", "--xla_force_host_platform_device_count=1",
                                   "--xla_force_host_platform_device_count=16 --xla_cpu_use_thunk_runtime=true"])
def test_good_host_device_counts_pass(flags):
    jaxsetup.check_device_count(flags)


def test_ynn_fusions_compile_per_function_and_only_on_a_jaxlib_that_knows_them(monkeypatch):
    import jax
    import jax.numpy as jnp
    import numpy as np

    options = jaxsetup.ynn_fusions()
    assert options == {jaxsetup.YNN_FLAG.removeprefix("--"): jaxsetup.YNN_KDE_FUSIONS}
    x = np.linspace(-3.0, 0.0, 1000)
    fused = jax.jit(lambda v: jnp.exp(v).sum(), compiler_options=options)  # XLA rejects unknown enum names
    assert abs(float(fused(x)) - np.exp(x).sum()) < 1e-3
    monkeypatch.setattr(jaxlib.version, "__version__", "0.8.0")
    assert jaxsetup.ynn_fusions() == {}

