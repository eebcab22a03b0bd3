// stb_image, compiled privately for gemma3: the decoder behind gemma3::load_image / decode_image.
//
// The library is header-only, so stb_image's implementation has to be compiled in every translation
// unit that includes this header, without clashing with a copy of stb_image the user compiles (or
// merely declares) in the same program or even in the same translation unit, in either order. How:
//
//   1. STB_IMAGE_STATIC: every stb function gets internal linkage, so N translation units hold N
//      private copies and the linker never sees a duplicate symbol.
//   2. The whole header is included inside `namespace gemma3::detail::stb`, so its types and its
//      static helpers (stbi__*) cannot collide with a global copy in the same translation unit.
//   3. stb declares its public functions `extern "C"`, and C-language-linkage names ignore
//      namespaces: GCC would emit two `stbi_load_from_memory` symbols into one object file when the
//      user's implementation sits in the same translation unit. So every public name is renamed
//      (`#define stbi_load_from_memory gemma3_detail_stbi_load_from_memory`) for the duration of
//      the include; the only entry points are the wrappers at the bottom, compiled while the names
//      are mapped.
//   4. Every configuration macro stb reads (STBI_NO_PNG, STBI_ASSERT, STBIDEF, its include guard,
//      ...) is saved with push_macro and cleared before the include, then restored after it, so the
//      user's configuration neither leaks into our copy nor is changed by it; stb's internal macros
//      (stbi__err, STBI__CASE, ...) are cleared before and after, so a user implementation earlier
//      or later in the same translation unit compiles unchanged.
//   5. Every C header stb includes is included first at global scope, so the nested #includes
//   inside
//      the namespace are no-ops (stdio.h, assert.h, math.h and the SIMD headers are not needed: see
//      the configuration below).
//
// Our configuration: no stdio (files are read by gemma3 itself, so errors name the file), no HDR /
// float loading, no Softimage PIC, no SIMD (the scalar decoders give the same pixels on every CPU),
// user-facing failure strings. Checked against stb_image v2.27 (Debian libstb-dev 0.0~git20220908);
// tests/test_vision.cpp compiles a global stb_image implementation after this header in the same
// translation unit.
#pragma once

#include "gemma3/build_mode.hpp"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cassert>
#include <cstddef>
#include <cstdint>

// ---- save and clear the user's stb macros ----
#pragma push_macro("STB_IMAGE_IMPLEMENTATION")
#undef STB_IMAGE_IMPLEMENTATION
#pragma push_macro("STB_IMAGE_STATIC")
#undef STB_IMAGE_STATIC
#pragma push_macro("STBI_INCLUDE_STB_IMAGE_H")
#undef STBI_INCLUDE_STB_IMAGE_H
#pragma push_macro("STBIDEF")
#undef STBIDEF
#pragma push_macro("STBI_EXTERN")
#undef STBI_EXTERN
#pragma push_macro("STBI_VERSION")
#undef STBI_VERSION
#pragma push_macro("STBI_ASSERT")
#undef STBI_ASSERT
#pragma push_macro("STBI_MALLOC")
#undef STBI_MALLOC
#pragma push_macro("STBI_REALLOC")
#undef STBI_REALLOC
#pragma push_macro("STBI_REALLOC_SIZED")
#undef STBI_REALLOC_SIZED
#pragma push_macro("STBI_FREE")
#undef STBI_FREE
#pragma push_macro("STBI_MAX_DIMENSIONS")
#undef STBI_MAX_DIMENSIONS
#pragma push_macro("STBI_NOTUSED")
#undef STBI_NOTUSED
#pragma push_macro("STBI_HAS_LROTL")
#undef STBI_HAS_LROTL
#pragma push_macro("STBI_NO_STDIO")
#undef STBI_NO_STDIO
#pragma push_macro("STBI_NO_LINEAR")
#undef STBI_NO_LINEAR
#pragma push_macro("STBI_NO_HDR")
#undef STBI_NO_HDR
#pragma push_macro("STBI_NO_SIMD")
#undef STBI_NO_SIMD
#pragma push_macro("STBI_NEON")
#undef STBI_NEON
#pragma push_macro("STBI_SSE2")
#undef STBI_SSE2
#pragma push_macro("STBI_MINGW_ENABLE_SSE2")
#undef STBI_MINGW_ENABLE_SSE2
#pragma push_macro("STBI_SIMD_ALIGN")
#undef STBI_SIMD_ALIGN
#pragma push_macro("STBI_NO_JPEG")
#undef STBI_NO_JPEG
#pragma push_macro("STBI_NO_PNG")
#undef STBI_NO_PNG
#pragma push_macro("STBI_NO_BMP")
#undef STBI_NO_BMP
#pragma push_macro("STBI_NO_PSD")
#undef STBI_NO_PSD
#pragma push_macro("STBI_NO_TGA")
#undef STBI_NO_TGA
#pragma push_macro("STBI_NO_GIF")
#undef STBI_NO_GIF
#pragma push_macro("STBI_NO_PIC")
#undef STBI_NO_PIC
#pragma push_macro("STBI_NO_PNM")
#undef STBI_NO_PNM
#pragma push_macro("STBI_NO_ZLIB")
#undef STBI_NO_ZLIB
#pragma push_macro("STBI_ONLY_JPEG")
#undef STBI_ONLY_JPEG
#pragma push_macro("STBI_ONLY_PNG")
#undef STBI_ONLY_PNG
#pragma push_macro("STBI_ONLY_BMP")
#undef STBI_ONLY_BMP
#pragma push_macro("STBI_ONLY_PSD")
#undef STBI_ONLY_PSD
#pragma push_macro("STBI_ONLY_TGA")
#undef STBI_ONLY_TGA
#pragma push_macro("STBI_ONLY_GIF")
#undef STBI_ONLY_GIF
#pragma push_macro("STBI_ONLY_HDR")
#undef STBI_ONLY_HDR
#pragma push_macro("STBI_ONLY_PIC")
#undef STBI_ONLY_PIC
#pragma push_macro("STBI_ONLY_PNM")
#undef STBI_ONLY_PNM
#pragma push_macro("STBI_ONLY_ZLIB")
#undef STBI_ONLY_ZLIB
#pragma push_macro("STBI_SUPPORT_ZLIB")
#undef STBI_SUPPORT_ZLIB
#pragma push_macro("STBI_NO_FAILURE_STRINGS")
#undef STBI_NO_FAILURE_STRINGS
#pragma push_macro("STBI_FAILURE_USERMSG")
#undef STBI_FAILURE_USERMSG
#pragma push_macro("STBI_NO_THREAD_LOCALS")
#undef STBI_NO_THREAD_LOCALS
#pragma push_macro("STBI_THREAD_LOCAL")
#undef STBI_THREAD_LOCAL
#pragma push_macro("STBI_WINDOWS_UTF8")
#undef STBI_WINDOWS_UTF8
#undef STBI__X86_TARGET
#undef STBI__X64_TARGET
#undef STBI__BYTECAST
#undef STBI__CASE
#undef STBI__COMBO
#undef STBI__HDR_BUFLEN
#undef STBI__IDCT_1D
#undef STBI__MARKER_none
#undef STBI__PNG_TYPE
#undef STBI__RESTART
#undef STBI__ZFAST_BITS
#undef STBI__ZFAST_MASK
#undef STBI__ZNSYMS
#undef FAST_BITS
#undef stbi_inline
#undef stbi_lrot
#undef stbi__err
#undef stbi__errpf
#undef stbi__errpuc
#undef stbi__f2f
#undef stbi__float2fixed
#undef stbi__float2int
#undef stbi__fsh
#undef stbi__div16
#undef stbi__div4
#undef stbi__DNL
#undef stbi__EOI
#undef stbi__SOF
#undef stbi__SOF_progressive
#undef stbi__SOI
#undef stbi__SOS
#undef stbi__de_iphone_flag
#undef stbi__unpremultiply_on_load
#undef stbi__vertically_flip_on_load

// ---- our configuration ----
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_NO_HDR
#define STBI_NO_LINEAR
// No Softimage PIC: PIL (so the reference) cannot open it, and stb_image 2.27's PIC loader converts
// a NULL buffer after a failed decode (found by tests/fuzz/fuzz_image).
#define STBI_NO_PIC
#define STBI_NO_SIMD
#define STBI_FAILURE_USERMSG
#define STBI_ASSERT(x) assert(x)
#define stbi_convert_iphone_png_to_rgb gemma3_detail_stbi_convert_iphone_png_to_rgb
#define stbi_convert_iphone_png_to_rgb_thread gemma3_detail_stbi_convert_iphone_png_to_rgb_thread
#define stbi_convert_wchar_to_utf8 gemma3_detail_stbi_convert_wchar_to_utf8
#define stbi_failure_reason gemma3_detail_stbi_failure_reason
#define stbi_hdr_to_ldr_gamma gemma3_detail_stbi_hdr_to_ldr_gamma
#define stbi_hdr_to_ldr_scale gemma3_detail_stbi_hdr_to_ldr_scale
#define stbi_image_free gemma3_detail_stbi_image_free
#define stbi_info gemma3_detail_stbi_info
#define stbi_info_from_callbacks gemma3_detail_stbi_info_from_callbacks
#define stbi_info_from_file gemma3_detail_stbi_info_from_file
#define stbi_info_from_memory gemma3_detail_stbi_info_from_memory
#define stbi_is_16_bit gemma3_detail_stbi_is_16_bit
#define stbi_is_16_bit_from_callbacks gemma3_detail_stbi_is_16_bit_from_callbacks
#define stbi_is_16_bit_from_file gemma3_detail_stbi_is_16_bit_from_file
#define stbi_is_16_bit_from_memory gemma3_detail_stbi_is_16_bit_from_memory
#define stbi_is_hdr gemma3_detail_stbi_is_hdr
#define stbi_is_hdr_from_callbacks gemma3_detail_stbi_is_hdr_from_callbacks
#define stbi_is_hdr_from_file gemma3_detail_stbi_is_hdr_from_file
#define stbi_is_hdr_from_memory gemma3_detail_stbi_is_hdr_from_memory
#define stbi_ldr_to_hdr_gamma gemma3_detail_stbi_ldr_to_hdr_gamma
#define stbi_ldr_to_hdr_scale gemma3_detail_stbi_ldr_to_hdr_scale
#define stbi_load gemma3_detail_stbi_load
#define stbi_load_16 gemma3_detail_stbi_load_16
#define stbi_load_16_from_callbacks gemma3_detail_stbi_load_16_from_callbacks
#define stbi_load_16_from_memory gemma3_detail_stbi_load_16_from_memory
#define stbi_load_from_callbacks gemma3_detail_stbi_load_from_callbacks
#define stbi_load_from_file gemma3_detail_stbi_load_from_file
#define stbi_load_from_file_16 gemma3_detail_stbi_load_from_file_16
#define stbi_load_from_memory gemma3_detail_stbi_load_from_memory
#define stbi_load_gif_from_memory gemma3_detail_stbi_load_gif_from_memory
#define stbi_loadf gemma3_detail_stbi_loadf
#define stbi_loadf_from_callbacks gemma3_detail_stbi_loadf_from_callbacks
#define stbi_loadf_from_file gemma3_detail_stbi_loadf_from_file
#define stbi_loadf_from_memory gemma3_detail_stbi_loadf_from_memory
#define stbi_set_flip_vertically_on_load gemma3_detail_stbi_set_flip_vertically_on_load
#define stbi_set_flip_vertically_on_load_thread \
  gemma3_detail_stbi_set_flip_vertically_on_load_thread
#define stbi_set_unpremultiply_on_load gemma3_detail_stbi_set_unpremultiply_on_load
#define stbi_set_unpremultiply_on_load_thread gemma3_detail_stbi_set_unpremultiply_on_load_thread
#define stbi_zlib_decode_buffer gemma3_detail_stbi_zlib_decode_buffer
#define stbi_zlib_decode_malloc gemma3_detail_stbi_zlib_decode_malloc
#define stbi_zlib_decode_malloc_guesssize gemma3_detail_stbi_zlib_decode_malloc_guesssize
#define stbi_zlib_decode_malloc_guesssize_headerflag \
  gemma3_detail_stbi_zlib_decode_malloc_guesssize_headerflag
#define stbi_zlib_decode_noheader_buffer gemma3_detail_stbi_zlib_decode_noheader_buffer
#define stbi_zlib_decode_noheader_malloc gemma3_detail_stbi_zlib_decode_noheader_malloc

#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Weverything"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#elif defined(_MSC_VER)
#pragma warning(push, 0)
#endif

namespace gemma3::inline GEMMA3_MODE::detail::stb {
// stb_image 2.27 copies zero bytes to a null pointer when a PNG's first IDAT chunk is empty (a
// legal PNG: stbi__getn(s, z->idata + 0, 0) before any pixel data is allocated). memcpy's pointers
// must not be null even for zero bytes (found by tests/fuzz/fuzz_image under UBSan). stb's
// unqualified memcpy calls, compiled inside this namespace, find this one before the global one.
inline void* memcpy(void* dst, const void* src, size_t n) {
  return n == 0 ? dst : ::memcpy(dst, src, n);
}

#include <stb/stb_image.h>

// stb_image 2.27 (Debian 12's libstb-dev) trusts the 16 code counts of a JPEG Huffman table (DHT):
// when they add up to more than 256, stbi__build_huffman and the DHT reader write past the table's
// arrays (size[257], values[256]) into the rest of the decoder's state — heap corruption from a
// ~30-byte file (found by tests/fuzz/fuzz_image; newer stb_image refuses such a table as "bad DHT
// header"). Until the system copy does, gemma3 checks every DHT table before stb reads the file,
// walking the marker segments as stb does (junk between segments skipped up to the next 0xFF,
// entropy-coded data up to the next marker that is not a stuffed 0xFF00 or an RSTn) and checking
// more tables than stb could reach, never fewer. Returns false for a table of more than 256 codes.
inline bool jpeg_huffman_tables_ok(const unsigned char* p, int len) {
  long i = 0;  // SOI, after any number of 0xFF fill bytes (stb skips them too)
  while (i < len && p[i] == 0xFF) ++i;
  if (i == 0 || i >= len || p[i] != 0xD8) return true;              // not a JPEG
  const auto at = [&](long k) { return k < len ? int(p[k]) : 0; };  // stb reads zeros past the end
  ++i;
  while (i + 1 < len) {
    if (p[i] != 0xFF || p[i + 1] == 0xFF) {  // junk or a fill byte
      ++i;
      continue;
    }
    const int marker = p[i + 1];
    i += 2;
    if (marker == 0xD9) break;  // EOI
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8))
      continue;                                    // no length
    const long length = (at(i) << 8) | at(i + 1);  // includes its own two bytes
    if (marker == 0xC4)
      for (long table = i + 2; table < i + length;) {  // tables start inside the segment
        int codes = 0;
        for (int k = 0; k < 16; ++k) codes += at(table + 1 + k);
        if (codes > 256) return false;
        table += 17 + codes;
      }
    i += length;
    if (marker == 0xDA)  // SOS: entropy-coded data follows
      while (i + 1 < len &&
             !(p[i] == 0xFF && p[i + 1] != 0x00 && !(p[i + 1] >= 0xD0 && p[i + 1] <= 0xD7)))
        ++i;
  }
  return true;
}

// stb_image 2.27 reads the numbers of a PNM (P5/P6) header without an overflow check: a long run of
// digits is signed overflow, undefined behaviour (found by tests/fuzz/fuzz_image; newer stb refuses
// it, "integer parse overflow"). gemma3 reads the header as stb does (whitespace and # comments
// before each of width, height and maxval; a digit in the file's last byte is not read) and returns
// false when a number does not fit in an int.
inline bool pnm_header_ok(const unsigned char* p, int len) {
  if (len < 2 || p[0] != 'P' || (p[1] != '5' && p[1] != '6')) return true;  // not a PGM/PPM
  int pos = 2;
  const auto eof = [&] { return pos >= len; };
  const auto get = [&] { return pos < len ? char(p[pos++]) : char(0); };
  const auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  char c = get();
  for (int field = 0; field < 3; ++field) {
    for (;;) {
      while (!eof() && space(c)) c = get();
      if (eof() || c != '#') break;
      while (!eof() && c != '\n' && c != '\r') c = get();
    }
    long long value = 0;
    while (!eof() && c >= '0' && c <= '9') {
      value = value * 10 + (c - '0');
      if (value > INT_MAX) return false;
      c = get();
    }
  }
  return true;
}

// stb_image 2.27 gathers a PNG's compressed pixels chunk by chunk, growing its buffer to each IDAT
// chunk's declared length (up to 2^30 bytes) before reading the chunk: a 200-byte file claiming a
// 1 GiB IDAT made it allocate 2 GiB (found by tests/fuzz/fuzz_image). A chunk that runs past the
// end of the file is a truncated file, which stb refuses anyway once it has read past the end;
// gemma3 refuses it first. Walks the chunks as stb does (length, type, data, CRC) up to IEND, and
// returns false for a chunk whose data does not fit in the rest of the file.
inline bool png_chunks_fit(const unsigned char* p, int len) {
  static constexpr unsigned char signature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  if (len < 8 || ::memcmp(p, signature, 8) != 0) return true;  // not a PNG
  for (long pos = 8; pos + 8 <= len;) {
    const unsigned long length = (unsigned long)p[pos] << 24 | (unsigned long)p[pos + 1] << 16 |
                                 (unsigned long)p[pos + 2] << 8 | (unsigned long)p[pos + 3];
    if (length > (unsigned long)(len - pos - 8)) return false;
    if (::memcmp(p + pos + 4, "IEND", 4) == 0) break;
    pos += 12 + long(length);
  }
  return true;
}

// The checks above, run before stb sees the data; false sets stb's failure reason.
inline bool input_ok(const unsigned char* data, int len) {
  if (!jpeg_huffman_tables_ok(data, len)) return stbi__err("bad DHT header", "Corrupt JPEG");
  if (!pnm_header_ok(data, len))
    return stbi__err("integer parse overflow", "Corrupt PNM header: a number overflows");
  return true;
}

// The entry points gemma3 uses (the names above map to the renamed, internal-linkage functions).
inline int info_from_memory(const unsigned char* data, int len, int* w, int* h, int* channels) {
  if (!input_ok(data, len)) return 0;
  return stbi_info_from_memory(data, len, w, h, channels);
}
inline unsigned char* load_from_memory(const unsigned char* data, int len, int* w, int* h,
                                       int* channels, int desired_channels) {
  if (!input_ok(data, len)) return nullptr;
  // Only when decoding: the header alone (info_from_memory) reads no IDAT, and a PNG cut off in its
  // pixels stays "cannot decode", not "not a readable image".
  if (!png_chunks_fit(data, len))
    return stbi__errpuc("chunk past end", "Corrupt PNG: a chunk runs past the end");
  return stbi_load_from_memory(data, len, w, h, channels, desired_channels);
}
inline void image_free(void* p) {
  stbi_image_free(p);
}
inline const char* failure_reason() {
  return stbi_failure_reason();
}
}  // namespace gemma3::inline GEMMA3_MODE::detail::stb

#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#elif defined(_MSC_VER)
#pragma warning(pop)
#endif

// ---- clear ours, restore the user's ----
#undef stbi_convert_iphone_png_to_rgb
#undef stbi_convert_iphone_png_to_rgb_thread
#undef stbi_convert_wchar_to_utf8
#undef stbi_failure_reason
#undef stbi_hdr_to_ldr_gamma
#undef stbi_hdr_to_ldr_scale
#undef stbi_image_free
#undef stbi_info
#undef stbi_info_from_callbacks
#undef stbi_info_from_file
#undef stbi_info_from_memory
#undef stbi_is_16_bit
#undef stbi_is_16_bit_from_callbacks
#undef stbi_is_16_bit_from_file
#undef stbi_is_16_bit_from_memory
#undef stbi_is_hdr
#undef stbi_is_hdr_from_callbacks
#undef stbi_is_hdr_from_file
#undef stbi_is_hdr_from_memory
#undef stbi_ldr_to_hdr_gamma
#undef stbi_ldr_to_hdr_scale
#undef stbi_load
#undef stbi_load_16
#undef stbi_load_16_from_callbacks
#undef stbi_load_16_from_memory
#undef stbi_load_from_callbacks
#undef stbi_load_from_file
#undef stbi_load_from_file_16
#undef stbi_load_from_memory
#undef stbi_load_gif_from_memory
#undef stbi_loadf
#undef stbi_loadf_from_callbacks
#undef stbi_loadf_from_file
#undef stbi_loadf_from_memory
#undef stbi_set_flip_vertically_on_load
#undef stbi_set_flip_vertically_on_load_thread
#undef stbi_set_unpremultiply_on_load
#undef stbi_set_unpremultiply_on_load_thread
#undef stbi_zlib_decode_buffer
#undef stbi_zlib_decode_malloc
#undef stbi_zlib_decode_malloc_guesssize
#undef stbi_zlib_decode_malloc_guesssize_headerflag
#undef stbi_zlib_decode_noheader_buffer
#undef stbi_zlib_decode_noheader_malloc
#undef STBI__X86_TARGET
#undef STBI__X64_TARGET
#undef STBI__BYTECAST
#undef STBI__CASE
#undef STBI__COMBO
#undef STBI__HDR_BUFLEN
#undef STBI__IDCT_1D
#undef STBI__MARKER_none
#undef STBI__PNG_TYPE
#undef STBI__RESTART
#undef STBI__ZFAST_BITS
#undef STBI__ZFAST_MASK
#undef STBI__ZNSYMS
#undef FAST_BITS
#undef stbi_inline
#undef stbi_lrot
#undef stbi__err
#undef stbi__errpf
#undef stbi__errpuc
#undef stbi__f2f
#undef stbi__float2fixed
#undef stbi__float2int
#undef stbi__fsh
#undef stbi__div16
#undef stbi__div4
#undef stbi__DNL
#undef stbi__EOI
#undef stbi__SOF
#undef stbi__SOF_progressive
#undef stbi__SOI
#undef stbi__SOS
#undef stbi__de_iphone_flag
#undef stbi__unpremultiply_on_load
#undef stbi__vertically_flip_on_load
#undef STB_IMAGE_IMPLEMENTATION
#pragma pop_macro("STB_IMAGE_IMPLEMENTATION")
#undef STB_IMAGE_STATIC
#pragma pop_macro("STB_IMAGE_STATIC")
#undef STBI_INCLUDE_STB_IMAGE_H
#pragma pop_macro("STBI_INCLUDE_STB_IMAGE_H")
#undef STBIDEF
#pragma pop_macro("STBIDEF")
#undef STBI_EXTERN
#pragma pop_macro("STBI_EXTERN")
#undef STBI_VERSION
#pragma pop_macro("STBI_VERSION")
#undef STBI_ASSERT
#pragma pop_macro("STBI_ASSERT")
#undef STBI_MALLOC
#pragma pop_macro("STBI_MALLOC")
#undef STBI_REALLOC
#pragma pop_macro("STBI_REALLOC")
#undef STBI_REALLOC_SIZED
#pragma pop_macro("STBI_REALLOC_SIZED")
#undef STBI_FREE
#pragma pop_macro("STBI_FREE")
#undef STBI_MAX_DIMENSIONS
#pragma pop_macro("STBI_MAX_DIMENSIONS")
#undef STBI_NOTUSED
#pragma pop_macro("STBI_NOTUSED")
#undef STBI_HAS_LROTL
#pragma pop_macro("STBI_HAS_LROTL")
#undef STBI_NO_STDIO
#pragma pop_macro("STBI_NO_STDIO")
#undef STBI_NO_LINEAR
#pragma pop_macro("STBI_NO_LINEAR")
#undef STBI_NO_HDR
#pragma pop_macro("STBI_NO_HDR")
#undef STBI_NO_SIMD
#pragma pop_macro("STBI_NO_SIMD")
#undef STBI_NEON
#pragma pop_macro("STBI_NEON")
#undef STBI_SSE2
#pragma pop_macro("STBI_SSE2")
#undef STBI_MINGW_ENABLE_SSE2
#pragma pop_macro("STBI_MINGW_ENABLE_SSE2")
#undef STBI_SIMD_ALIGN
#pragma pop_macro("STBI_SIMD_ALIGN")
#undef STBI_NO_JPEG
#pragma pop_macro("STBI_NO_JPEG")
#undef STBI_NO_PNG
#pragma pop_macro("STBI_NO_PNG")
#undef STBI_NO_BMP
#pragma pop_macro("STBI_NO_BMP")
#undef STBI_NO_PSD
#pragma pop_macro("STBI_NO_PSD")
#undef STBI_NO_TGA
#pragma pop_macro("STBI_NO_TGA")
#undef STBI_NO_GIF
#pragma pop_macro("STBI_NO_GIF")
#undef STBI_NO_PIC
#pragma pop_macro("STBI_NO_PIC")
#undef STBI_NO_PNM
#pragma pop_macro("STBI_NO_PNM")
#undef STBI_NO_ZLIB
#pragma pop_macro("STBI_NO_ZLIB")
#undef STBI_ONLY_JPEG
#pragma pop_macro("STBI_ONLY_JPEG")
#undef STBI_ONLY_PNG
#pragma pop_macro("STBI_ONLY_PNG")
#undef STBI_ONLY_BMP
#pragma pop_macro("STBI_ONLY_BMP")
#undef STBI_ONLY_PSD
#pragma pop_macro("STBI_ONLY_PSD")
#undef STBI_ONLY_TGA
#pragma pop_macro("STBI_ONLY_TGA")
#undef STBI_ONLY_GIF
#pragma pop_macro("STBI_ONLY_GIF")
#undef STBI_ONLY_HDR
#pragma pop_macro("STBI_ONLY_HDR")
#undef STBI_ONLY_PIC
#pragma pop_macro("STBI_ONLY_PIC")
#undef STBI_ONLY_PNM
#pragma pop_macro("STBI_ONLY_PNM")
#undef STBI_ONLY_ZLIB
#pragma pop_macro("STBI_ONLY_ZLIB")
#undef STBI_SUPPORT_ZLIB
#pragma pop_macro("STBI_SUPPORT_ZLIB")
#undef STBI_NO_FAILURE_STRINGS
#pragma pop_macro("STBI_NO_FAILURE_STRINGS")
#undef STBI_FAILURE_USERMSG
#pragma pop_macro("STBI_FAILURE_USERMSG")
#undef STBI_NO_THREAD_LOCALS
#pragma pop_macro("STBI_NO_THREAD_LOCALS")
#undef STBI_THREAD_LOCAL
#pragma pop_macro("STBI_THREAD_LOCAL")
#undef STBI_WINDOWS_UTF8
#pragma pop_macro("STBI_WINDOWS_UTF8")
