# cmake -P script: `gemma3 bench --preset tiny --json` runs and reports the documented keys.
execute_process(COMMAND ${GEMMA3} bench --preset tiny --prompt-tokens 32 --gen-tokens 8 --json
  OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gemma3 bench failed (${rc})")
endif()
foreach(key decode_tok_s prefill_tok_s bandwidth_gb_s decode_roofline_fraction prefill_peak_fraction peak_rss_mb)
  string(JSON value ERROR_VARIABLE err GET "${out}" ${key})
  if(err OR NOT value GREATER 0)
    message(FATAL_ERROR "bench JSON lacks a positive ${key}: ${out}")
  endif()
endforeach()
message(STATUS "${out}")
