# cmake -P script: installs gemma3 into a scratch prefix, builds the research examples against it with
# find_package(gemma3 CONFIG) (tests/examples_installed/CMakeLists.txt), then runs them with
# tests/examples_test.sh and the installed gemma3 CLI. Variables: SOURCE_DIR WORK_DIR GENERATOR
# TOKENIZER [LAUNCHER].
include(${CMAKE_CURRENT_LIST_DIR}/../install_gemma3.cmake)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/examples_installed -B ${WORK_DIR}/app -G ${GENERATOR} ${launcher}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release -DEXAMPLES_DIR=${SOURCE_DIR}/examples/research)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/app -j2)
# 77: the script's "skipped" (no tokenizer); ctest sees it through SKIP_RETURN_CODE on the calling test.
# (with the installed gemma3 CLI, as a user of the package would run them)
execute_process(COMMAND ${SOURCE_DIR}/tests/examples_test.sh ${WORK_DIR}/app ${prefix}/bin/gemma3 ${TOKENIZER}
                RESULT_VARIABLE rc)
if(rc EQUAL 77)
  message(STATUS "examples built against the installed package; not run (no tokenizer)")
elseif(NOT rc EQUAL 0)
  message(FATAL_ERROR "examples_test.sh failed (${rc}) on the examples built against the installed package")
endif()
