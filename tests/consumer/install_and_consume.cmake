# cmake -P script: installs gemma3 into a scratch prefix, then builds and runs the consumer with
# find_package(gemma3 CONFIG) against that prefix. Variables: SOURCE_DIR WORK_DIR GENERATOR
# CONSUMER_DIR CHECKPOINT [LAUNCHER].
include(${CMAKE_CURRENT_LIST_DIR}/../install_gemma3.cmake)
run(${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${WORK_DIR}/app -G ${GENERATOR} ${launcher}
    -DGEMMA3_CONSUME=find_package -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/app -j2)
run(${WORK_DIR}/app/consumer ${CHECKPOINT})
