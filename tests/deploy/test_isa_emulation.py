"""Running as another CPU: `$ASYMFORMER_CPU_FLAGS` (what asymformer reads) and the CPUID mask of
benchmarks/isa_emulation.py (what every library reads), which `make test-avx2` and the benchmarks'
`--isa avx2` rely on. The mask needs Linux's CPUID faulting and a C compiler: skipped elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asymformer.deploy import cpu

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "benchmarks" / "isa_emulation.py"


def test_flags_override_decides_the_int8_format(monkeypatch):
    """An emulated AVX2 CPU must get 7-bit weights although /proc/cpuinfo lists the host's VNNI."""
    cpu.cpu_flags.cache_clear()
    monkeypatch.setenv(cpu.FLAGS_OVERRIDE, "sse4_1 avx avx2 fma")
    try:
        assert cpu.cpu_flags() == {"sse4_1", "avx", "avx2", "fma"}
        assert cpu.int8_scheme()["weight_bits"] == 7 and not cpu.has_vnni()
        info = cpu.cpu_info()
        assert info["features"]["avx2"] and not info["features"]["avx512f"]
        assert info["flags_from"].startswith("$ASYMFORMER_CPU_FLAGS")
    finally:
        cpu.cpu_flags.cache_clear()
    monkeypatch.delenv(cpu.FLAGS_OVERRIDE)
    assert "flags_from" not in cpu.cpu_info()


def _masked(code: str, *python_flags: str) -> subprocess.CompletedProcess:
    sys.path.insert(0, str(RUNNER.parent))
    try:
        import isa_emulation
    finally:
        sys.path.remove(str(RUNNER.parent))
    if isa_emulation.mask_library() is None:
        pytest.skip("CPUID cannot be masked here (no cpuid_fault flag or no C compiler)")
    return subprocess.run([sys.executable, str(RUNNER), "avx2", "--", sys.executable, *python_flags, "-c", code],
                          capture_output=True, text=True, timeout=120)


def test_masked_cpuid_reaches_the_libraries():
    """torch picks its AVX2 kernels and asymformer reads AVX2 flags: the AVX-512 host is hidden."""
    done = _masked("import torch; from asymformer.deploy.cpu import int8_scheme; "
                   "print(torch.backends.cpu.get_cpu_capability(), int8_scheme()['weight_bits'])")
    assert done.returncode == 0, done.stderr[-500:]
    capability, bits = done.stdout.split()
    assert capability in ("AVX2", "DEFAULT") and bits == "7"


def test_real_faults_still_reach_faulthandler():
    """The mask keeps its SIGSEGV handler first but hands real faults on: a crash stays a crash,
    with Python's faulthandler trace (pytest enables faulthandler)."""
    done = _masked("import ctypes; ctypes.string_at(0)", "-X", "faulthandler")
    assert done.returncode != 0
    assert "Fatal Python error: Segmentation fault" in done.stderr


def test_runner_usage_is_one_line():
    done = subprocess.run([sys.executable, str(RUNNER), "avx512"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip().startswith("usage:")
