/* Make a process see an AVX2-only x86-64 CPU (no AVX-512, VNNI, AVX-VNNI, AMX, bf16) on a CPU that
 * has them, so that every library in it picks its AVX2 kernels and runs them natively.
 *
 * Loaded with LD_PRELOAD (benchmarks/isa_emulation.py builds it). Linux's CPUID faulting
 * (arch_prctl ARCH_SET_CPUID, CPU flag cpuid_fault) turns each CPUID instruction into a SIGSEGV;
 * the handler below runs the real CPUID with faulting briefly off, clears the masked feature bits
 * and steps over the instruction. Faulting is inherited by the threads created afterwards and
 * re-armed in child processes by LD_PRELOAD itself (execve resets it).
 *
 * Programs install their own SIGSEGV handlers (Python's faulthandler, which pytest enables): this
 * library keeps its handler in front by wrapping sigaction() and signal(), records theirs, and
 * passes every fault that is not a CPUID on to it.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define ARCH_SET_CPUID 0x1012
#define BIT(n) (1u << (n))

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;
static struct sigaction theirs; /* the program's SIGSEGV action, served on its behalf */
static int active;

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
}

static void mask(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    if (leaf == 7 && sub == 0) {
        /* EBX: AVX512 F, DQ, IFMA, PF, ER, CD, BW, VL */
        r[1] &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
        /* ECX: AVX512 VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ */
        r[2] &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
        /* EDX: AVX512 4VNNIW, 4FMAPS, VP2INTERSECT, AMX-BF16, AVX512 FP16, AMX-TILE, AMX-INT8 */
        r[3] &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~(BIT(4) | BIT(5)); /* EAX: AVX-VNNI, AVX512 BF16 */
    }
}

static void pass_on(int sig, siginfo_t *info, void *ctx) {
    if (theirs.sa_flags & SA_SIGINFO) {
        theirs.sa_sigaction(sig, info, ctx);
    } else if (theirs.sa_handler != SIG_DFL && theirs.sa_handler != SIG_IGN) {
        theirs.sa_handler(sig);
    } else { /* default action: uninstall ourselves; the faulting instruction runs again and ends the process */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        real_sigaction(SIGSEGV, &dfl, NULL);
    }
}

static void on_segv(int sig, siginfo_t *info, void *ctx_) {
    ucontext_t *ctx = ctx_;
    greg_t *g = ctx->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) {
        uint32_t r[4], leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX];
        real_cpuid(leaf, sub, r);
        mask(leaf, sub, r);
        g[REG_RAX] = r[0];
        g[REG_RBX] = r[1];
        g[REG_RCX] = r[2];
        g[REG_RDX] = r[3];
        g[REG_RIP] += 2;
        return;
    }
    pass_on(sig, info, ctx_);
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction)
        real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV || !active)
        return real_sigaction(sig, act, old);
    if (old)
        *old = theirs;
    if (act)
        theirs = *act;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    return sigaction(sig, &act, &old) == 0 ? old.sa_handler : SIG_ERR;
}

__attribute__((constructor)) static void start(void) {
    struct sigaction ours;
    real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = on_segv;
    ours.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&ours.sa_mask);
    if (real_sigaction(SIGSEGV, &ours, &theirs) != 0)
        return;
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "cpuid_avx2: no CPUID faulting here (arch_prctl ARCH_SET_CPUID): the CPU is not masked\n");
        real_sigaction(SIGSEGV, &theirs, NULL);
        return;
    }
    active = 1;
}
