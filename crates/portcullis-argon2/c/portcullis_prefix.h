/* Force-included (-include) into every C file of this crate's build: gives each global symbol
 * of the reference library a `portcullis_a2_` prefix, so this copy links beside any other
 * copy of the library (argon2-sys's, in the benchmark) and beside other C code. Written for
 * this crate; the vendored sources under src/ and include/ are upstream's, unchanged. */
#ifndef PORTCULLIS_PREFIX_H
#define PORTCULLIS_PREFIX_H
#define FLAG_clear_internal_memory portcullis_a2_FLAG_clear_internal_memory
#define allocate_memory portcullis_a2_allocate_memory
#define argon2_ctx portcullis_a2_argon2_ctx
#define argon2_encodedlen portcullis_a2_argon2_encodedlen
#define argon2_error_message portcullis_a2_argon2_error_message
#define argon2_hash portcullis_a2_argon2_hash
#define argon2_thread_create portcullis_a2_argon2_thread_create
#define argon2_thread_exit portcullis_a2_argon2_thread_exit
#define argon2_thread_join portcullis_a2_argon2_thread_join
#define argon2_type2string portcullis_a2_argon2_type2string
#define argon2_verify portcullis_a2_argon2_verify
#define argon2_verify_ctx portcullis_a2_argon2_verify_ctx
#define argon2d_ctx portcullis_a2_argon2d_ctx
#define argon2d_hash_encoded portcullis_a2_argon2d_hash_encoded
#define argon2d_hash_raw portcullis_a2_argon2d_hash_raw
#define argon2d_verify portcullis_a2_argon2d_verify
#define argon2d_verify_ctx portcullis_a2_argon2d_verify_ctx
#define argon2i_ctx portcullis_a2_argon2i_ctx
#define argon2i_hash_encoded portcullis_a2_argon2i_hash_encoded
#define argon2i_hash_raw portcullis_a2_argon2i_hash_raw
#define argon2i_verify portcullis_a2_argon2i_verify
#define argon2i_verify_ctx portcullis_a2_argon2i_verify_ctx
#define argon2id_ctx portcullis_a2_argon2id_ctx
#define argon2id_hash_encoded portcullis_a2_argon2id_hash_encoded
#define argon2id_hash_raw portcullis_a2_argon2id_hash_raw
#define argon2id_verify portcullis_a2_argon2id_verify
#define argon2id_verify_ctx portcullis_a2_argon2id_verify_ctx
#define b64len portcullis_a2_b64len
#define blake2b portcullis_a2_blake2b
#define blake2b_final portcullis_a2_blake2b_final
#define blake2b_init portcullis_a2_blake2b_init
#define blake2b_init_key portcullis_a2_blake2b_init_key
#define blake2b_init_param portcullis_a2_blake2b_init_param
#define blake2b_long portcullis_a2_blake2b_long
#define blake2b_update portcullis_a2_blake2b_update
#define clear_internal_memory portcullis_a2_clear_internal_memory
#define copy_block portcullis_a2_copy_block
#define decode_string portcullis_a2_decode_string
#define encode_string portcullis_a2_encode_string
#define fill_first_blocks portcullis_a2_fill_first_blocks
#define fill_memory_blocks portcullis_a2_fill_memory_blocks
#define finalize portcullis_a2_finalize
#define free_memory portcullis_a2_free_memory
#define index_alpha portcullis_a2_index_alpha
#define init_block_value portcullis_a2_init_block_value
#define initial_hash portcullis_a2_initial_hash
#define initialize portcullis_a2_initialize
#define numlen portcullis_a2_numlen
#define secure_wipe_memory portcullis_a2_secure_wipe_memory
#define validate_inputs portcullis_a2_validate_inputs
#define xor_block portcullis_a2_xor_block
/* The fill loop: core.c calls `fill_segment`, which is the dispatcher (dispatch.c); each
 * compilation of opt.c or ref.c names its own with PORTCULLIS_A2_FILL_SEGMENT. */
#ifdef PORTCULLIS_A2_FILL_SEGMENT
#define fill_segment PORTCULLIS_A2_FILL_SEGMENT
#else
#define fill_segment portcullis_a2_fill_segment
#endif
#endif
