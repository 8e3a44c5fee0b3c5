"""Run a benchmark as an AVX2-only CPU would, from a CPU with AVX-512 (`--isa avx2`).

Two ways, the first wherever it works:
- **CPUID masking** (`cpuid_avx2.c`, built with the system's C compiler and preloaded): Linux's CPUID
  faulting (`arch_prctl(ARCH_SET_CPUID)`, flag `cpuid_fault` in /proc/cpuinfo) traps every CPUID
  instruction of the process, and the handler answers with AVX-512, VNNI, AMX and bf16 cleared.
  Every library then picks its AVX2 kernels on its own: ATen, oneDNN (torch and OpenVINO), MKL and
  MLAS (ONNX Runtime, OpenVINO's FullyConnected) alike, running natively at full speed. The times
  are those of AVX2 code on this CPU's cores (same clock, two 256-bit FMA ports as on AVX2 CPUs),
  not of another microarchitecture: label them so.
- **ISA variables** (fallback): `ONEDNN_MAX_CPU_ISA`, `ATEN_CPU_CAPABILITY`, `MKL_ENABLE_INSTRUCTIONS`.
  MLAS ignores them (`NOT_RESTRICTED` marks the rows it runs).
The settings must be in place before torch loads, so `reexec(isa)` starts the script again with
them, with $ASYMFORMER_CPU_FLAGS naming the emulated CPU's flags, so that asymformer reads them
instead of /proc/cpuinfo's (its INT8 weight format and the FP32 peak follow).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

EMULATED = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}
FLAGS = {"avx2": "fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c"}  # an AVX2 CPU without VNNI (Zen 3)
NOT_RESTRICTED = ("MLAS (all of onnxruntime, OpenVINO's FP32 FullyConnected) ignores the ISA variables: "
                  "partly the host's kernels, not an AVX2 time")
MASK_SOURCE = Path(__file__).with_name("cpuid_avx2.c")
MARK = "ASYMFORMER_ISA_EMULATION"  # how the re-executed script knows which way it runs


def _cpuid_faulting() -> bool:
    try:
        return "cpuid_fault" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def mask_library() -> Path | None:
    """The CPUID-masking library, built once per source version into the user cache; None where it
    cannot work here (no CPUID faulting, no C compiler, the build fails)."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not _cpuid_faulting() or cc is None:
        return None
    digest = hashlib.sha256(MASK_SOURCE.read_bytes()).hexdigest()[:12]
    lib = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "asymformer" / f"cpuid_avx2-{digest}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        built = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(MASK_SOURCE), "-ldl"],
                               capture_output=True, text=True)
        if built.returncode != 0:
            print(f"isa_emulation: cannot build {MASK_SOURCE.name}: {built.stderr.strip()[:200]}", file=sys.stderr)
            return None
        os.replace(tmp, lib)
    return lib


def _environment(isa: str, lib: Path | None) -> dict[str, str]:
    """This process's environment plus what emulating `isa` takes: the ISA variables, the flags
    asymformer reads instead of /proc/cpuinfo (`deploy.cpu.FLAGS_OVERRIDE`) and, where `lib` was
    built, the CPUID mask preloaded."""
    env = {**os.environ, **EMULATED[isa], MARK: "variables", "ASYMFORMER_CPU_FLAGS": FLAGS[isa]}
    if lib is not None:
        env[MARK] = "cpuid"
        env["LD_PRELOAD"] = " ".join(p for p in (str(lib), os.environ.get("LD_PRELOAD", "")) if p)
    return env


def reexec(isa: str) -> None:
    """Start this script again emulating `isa` (no-op once it is)."""
    if os.environ.get(MARK):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], _environment(isa, mask_library()))


def method() -> str:
    """'cpuid' (every library restricted), 'variables' (MLAS is not) or 'native'."""
    return os.environ.get(MARK, "native")


def describe(isa: str) -> dict:
    """What the JSON says about the emulation: how, and what each library reports."""
    import torch

    out = {"asked": isa, "method": method(), "torch_capability": torch.backends.cpu.get_cpu_capability()}
    if isa != "native" and out["torch_capability"] not in ("AVX2", "DEFAULT"):
        raise SystemExit(f"isa_emulation: asked for {isa} but torch still runs {out['torch_capability']} kernels")
    if method() == "cpuid":
        out["how"] = ("CPUID masked by LD_PRELOAD (cpuid_avx2.c, CPUID faulting): every library runs its AVX2 "
                      "kernels natively on this CPU's cores")
    elif method() == "variables":
        out["how"] = f"ISA variables {EMULATED[isa]}; {NOT_RESTRICTED}"
    return out


def note(isa: str, backend: str) -> str | None:
    """Why a backend's time under emulation is not an AVX2 time, or None."""
    if isa == "native" or method() == "cpuid":
        return None
    if backend.startswith("onnxruntime") or backend == "openvino":
        return NOT_RESTRICTED
    if backend.startswith("openvino"):
        return "OpenVINO INT8/bf16: oneDNN kernels restricted; any MLAS layers are not"
    return None


def main(argv: list[str]) -> int:
    """`python benchmarks/isa_emulation.py avx2 -- COMMAND...`: run COMMAND (and its children) as an
    AVX2-only CPU, e.g. the test suite (`make test-avx2`); exit 2 where CPUID cannot be masked here."""
    if len(argv) < 3 or argv[0] not in EMULATED or argv[1] != "--":
        print("usage: python benchmarks/isa_emulation.py avx2 -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    lib = mask_library()
    if lib is None:
        print("isa_emulation: CPUID cannot be masked here (needs the cpuid_fault CPU flag and a C compiler)",
              file=sys.stderr)
        return 2
    return subprocess.run(argv[2:], env=_environment(argv[0], lib)).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
