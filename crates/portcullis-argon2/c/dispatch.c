/* The fill loop chosen at run time. Written for this crate (not upstream): the reference
 * library's core.c calls fill_segment once per segment; here that call goes to one of the
 * compilations of upstream's own fill loops, opt.c built for AVX-512F, for AVX2 and for the
 * x86-64 baseline (SSE2), or ref.c (portable), as the calling thread chose with
 * portcullis_a2_use(). The choice is per thread, so a caller must run the lanes on its own
 * thread (threads = 1, which the Rust side always sets). */
#include "argon2.h"
#include "core.h"

void portcullis_a2_fill_segment_ref(const argon2_instance_t *instance,
                                    argon2_position_t position);
#if defined(PORTCULLIS_A2_X86)
void portcullis_a2_fill_segment_sse2(const argon2_instance_t *instance,
                                     argon2_position_t position);
void portcullis_a2_fill_segment_avx2(const argon2_instance_t *instance,
                                     argon2_position_t position);
void portcullis_a2_fill_segment_avx512f(const argon2_instance_t *instance,
                                        argon2_position_t position);
#endif

/* 0 = ref.c, 1 = opt.c SSE2, 2 = opt.c AVX2, 3 = opt.c AVX-512F (the Rust `Kernel` enum). */
static _Thread_local int chosen = 0;

void portcullis_a2_use(int kernel) { chosen = kernel; }

void fill_segment(const argon2_instance_t *instance, argon2_position_t position) {
    switch (chosen) {
#if defined(PORTCULLIS_A2_X86)
    case 3:
        portcullis_a2_fill_segment_avx512f(instance, position);
        return;
    case 2:
        portcullis_a2_fill_segment_avx2(instance, position);
        return;
    case 1:
        portcullis_a2_fill_segment_sse2(instance, position);
        return;
#endif
    default:
        portcullis_a2_fill_segment_ref(instance, position);
        return;
    }
}
