# Included by the cmake -P scripts that test gemma3 as an installed package
# (consumer/install_and_consume.cmake, examples_installed/install_and_build.cmake): a fresh
# WORK_DIR, run() for commands that must succeed, and gemma3 configured, built and installed from
# SOURCE_DIR into ${prefix} (= WORK_DIR/prefix): headers, the kernels library, the CMake config,
# bin/gemma3, share/gemma3/{scripts,gdb}, share/doc/gemma3. Variables: SOURCE_DIR WORK_DIR GENERATOR
# [LAUNCHER: a compiler launcher such as ccache, passed on as ${launcher}].
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()
set(launcher "")
if(LAUNCHER)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -G ${GENERATOR} ${launcher}
    -DGEMMA3_BUILD_TESTS=OFF -DGEMMA3_BUILD_EXAMPLES=ON -DGEMMA3_BUILD_BENCHMARKS=OFF -DGEMMA3_BUILD_PYTHON=OFF
    -DGEMMA3_INSTALL=ON -DCMAKE_INSTALL_PREFIX=${prefix} -DCMAKE_BUILD_TYPE=Release)
# (the library and the gemma3 CLI: the package's tools are the installed copies)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/lib -j2 --target gemma3_kernels gemma3_cli)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
