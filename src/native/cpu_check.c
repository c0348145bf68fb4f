/*
 * A build of sluice for a newer CPU (TARGET_CPU=x86-64-v3, deploy/pgo/build.sh) says which
 * of the features it was compiled to use this CPU lacks, and exits, instead of dying on
 * SIGILL somewhere in its first lines of Rust.
 *
 * Why C: this runs as a constructor, before main, and build.rs compiles it for the baseline
 * x86-64 whatever the Rust code targets. Rust code compiled for x86-64-v3 may use AVX
 * anywhere, even to copy a 16-byte struct, so no Rust function of that build can check
 * for AVX safely; and is_x86_feature_detected! answers "yes" for every feature enabled at
 * compile time without asking the CPU.
 *
 * SLUICE_TARGET_FEATURES is cargo's CARGO_CFG_TARGET_FEATURE for the Rust build: the
 * comma-separated features its code may use.
 */
#include <cpuid.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#ifndef SLUICE_TARGET_FEATURES
#define SLUICE_TARGET_FEATURES ""
#endif

enum reg { LEAF1_ECX, LEAF7_EBX, EXT1_ECX };
enum state { NONE, AVX_STATE, AVX512_STATE };

struct feature {
    const char *name; /* as rustc names it */
    enum reg reg;
    unsigned bit;
    enum state state; /* register state the OS must save for it */
};

/* The features x86-64-v2, -v3 and -v4 add to the baseline. */
static const struct feature features[] = {
    {"sse3", LEAF1_ECX, 0, NONE},       {"ssse3", LEAF1_ECX, 9, NONE},
    {"sse4.1", LEAF1_ECX, 19, NONE},    {"sse4.2", LEAF1_ECX, 20, NONE},
    {"popcnt", LEAF1_ECX, 23, NONE},    {"cmpxchg16b", LEAF1_ECX, 13, NONE},
    {"movbe", LEAF1_ECX, 22, NONE},     {"xsave", LEAF1_ECX, 26, NONE},
    {"avx", LEAF1_ECX, 28, AVX_STATE},  {"f16c", LEAF1_ECX, 29, AVX_STATE},
    {"fma", LEAF1_ECX, 12, AVX_STATE},  {"avx2", LEAF7_EBX, 5, AVX_STATE},
    {"bmi1", LEAF7_EBX, 3, NONE},       {"bmi2", LEAF7_EBX, 8, NONE},
    {"lzcnt", EXT1_ECX, 5, NONE},       {"avx512f", LEAF7_EBX, 16, AVX512_STATE},
    {"avx512dq", LEAF7_EBX, 17, AVX512_STATE}, {"avx512cd", LEAF7_EBX, 28, AVX512_STATE},
    {"avx512bw", LEAF7_EBX, 30, AVX512_STATE}, {"avx512vl", LEAF7_EBX, 31, AVX512_STATE},
};

/* Whether `name` is one of the comma-separated names in `list`. */
static int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

static void say(const char *text) {
    /* A short write loses part of the message, nothing else. */
    ssize_t ignored = write(2, text, strlen(text));
    (void)ignored;
}

__attribute__((constructor)) static void sluice_check_cpu_features(void) {
    unsigned eax, ebx, ecx, edx;
    uint32_t regs[3] = {0, 0, 0};
    uint64_t xcr0 = 0;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        regs[LEAF1_ECX] = ecx;
        if (ecx >> 27 & 1) { /* OSXSAVE: the OS has turned XGETBV on */
            uint32_t lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            xcr0 = (uint64_t)hi << 32 | lo;
        }
    }
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
        regs[LEAF7_EBX] = ebx;
    if (__get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx))
        regs[EXT1_ECX] = ecx;
    int missing = 0;
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++) {
        const struct feature *f = &features[i];
        if (!listed(SLUICE_TARGET_FEATURES, f->name))
            continue;
        int present = regs[f->reg] >> f->bit & 1;
        if (f->state == AVX_STATE)
            present = present && (xcr0 & 0x6) == 0x6;
        if (f->state == AVX512_STATE)
            present = present && (xcr0 & 0xe6) == 0xe6;
        if (present)
            continue;
        say(missing ? ", " : "sluice: this build needs CPU features this machine lacks (");
        say(f->name);
        missing++;
    }
    if (missing) {
        say("); build without TARGET_CPU (deploy/pgo/build.sh) or with -Ctarget-cpu for "
            "this machine\n");
        _exit(1);
    }
}
