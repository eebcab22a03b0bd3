# cmake -P script: `gemma3 bench --preset tiny --json` runs and reports the documented keys, for
# each backend that a bench compares (the f32-input fast path; bf16 inputs, on vdpbf16ps where the
# CPU has it; the weights mapped and in 2 MiB pages); and `--preset tiny-mm` its vision encoder's.
# The first decodes twice: the speed is the faster run's, and the slower is reported too.
foreach(args "--preset;tiny;--backend;fast;--decode-runs;2" "--preset;tiny;--backend;fast-bf16;--huge-pages"
             "--preset;tiny-mm;--backend;fast" "--preset;tiny-mm;--backend;fast-bf16")
  execute_process(COMMAND ${GEMMA3} bench --prompt-tokens 32 --gen-tokens 8 --json ${args}
    OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gemma3 bench ${args} failed (${rc})")
  endif()
  foreach(key decode_tok_s decode_slowest_tok_s decode_runs prefill_tok_s prefill_cold_tok_s prefill_runs kv_bytes_per_token bandwidth_gb_s decode_roofline_fraction prefill_peak_fraction
              prefill_fma_peak_fraction fma_peak_gflops peak_rss_mib)
    string(JSON value ERROR_VARIABLE err GET "${out}" ${key})
    if(err OR NOT value GREATER 0)
      message(FATAL_ERROR "bench ${args}: JSON lacks a positive ${key}: ${out}")
    endif()
  endforeach()
  # Each run against its own yardstick: every decode run, and the warm prefill run (of two).
  foreach(key decode_roofline_fraction_own prefill_peak_fraction_own)
    string(JSON median ERROR_VARIABLE err GET "${out}" ${key} median)
    string(JSON low ERROR_VARIABLE err2 GET "${out}" ${key} low)
    string(JSON high ERROR_VARIABLE err3 GET "${out}" ${key} high)
    string(JSON own_runs ERROR_VARIABLE err4 GET "${out}" ${key} runs)
    if(err OR err2 OR err3 OR err4 OR NOT low GREATER 0 OR median LESS low OR high LESS median)
      message(FATAL_ERROR "bench ${args}: ${key} is not a positive median within its range: ${out}")
    endif()
  endforeach()
  string(JSON own_runs GET "${out}" decode_roofline_fraction_own runs)
  string(JSON decode_runs GET "${out}" decode_runs)
  string(JSON prefill_own_runs GET "${out}" prefill_peak_fraction_own runs)
  if(NOT own_runs EQUAL decode_runs OR NOT prefill_own_runs EQUAL 1)
    message(FATAL_ERROR "bench ${args}: ${own_runs} decode runs against their own bandwidth (of "
                        "${decode_runs}), ${prefill_own_runs} prefill runs against their own peak "
                        "(of 2, one warm): ${out}")
  endif()
  string(JSON fastest GET "${out}" decode_tok_s)
  string(JSON slowest GET "${out}" decode_slowest_tok_s)
  string(JSON runs GET "${out}" decode_runs)
  if(slowest GREATER fastest OR (args MATCHES "decode-runs" AND NOT runs EQUAL 2))
    message(FATAL_ERROR "bench ${args}: ${runs} decode runs, the slowest at ${slowest} tok/s and "
                        "the fastest at ${fastest}: ${out}")
  endif()
  # The matrices' bytes per dtype, and weights_dtype the one of the most (a mixed file's name).
  string(JSON dtype ERROR_VARIABLE err GET "${out}" weights_dtype)
  string(JSON dtype_bytes ERROR_VARIABLE err2 GET "${out}" weights_dtype_bytes ${dtype})
  string(JSON weight_bytes GET "${out}" weight_bytes_per_token)
  if(err OR err2 OR NOT dtype_bytes GREATER 0 OR dtype_bytes GREATER weight_bytes)
    message(FATAL_ERROR "bench ${args}: weights_dtype ${dtype} lacks its bytes (${dtype_bytes} "
                        "of ${weight_bytes} per token) in weights_dtype_bytes: ${out}")
  endif()
  if(args MATCHES "tiny-mm")
    foreach(key vision_encoder_s vision_gflops vision_peak_fraction vision_fma_peak_fraction
                vision_patches vision_peak_rss_mib)
      string(JSON value ERROR_VARIABLE err GET "${out}" ${key})
      if(err OR NOT value GREATER 0)
        message(FATAL_ERROR "bench ${args}: JSON lacks a positive ${key}: ${out}")
      endif()
    endforeach()
  endif()
  message(STATUS "${out}")
endforeach()
