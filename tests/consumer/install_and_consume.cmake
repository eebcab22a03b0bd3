# cmake -P script: installs gemma3 into a scratch prefix, then builds and runs the consumer with
# find_package(gemma3 CONFIG) against that prefix. Variables: SOURCE_DIR WORK_DIR GENERATOR
# CONSUMER_DIR CHECKPOINT [LAUNCHER].
include(${CMAKE_CURRENT_LIST_DIR}/../install_gemma3.cmake)
run(${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${WORK_DIR}/app -G ${GENERATOR} ${launcher}
    -DGEMMA3_CONSUME=find_package -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/app -j2)
run(${WORK_DIR}/app/consumer ${CHECKPOINT})
# The installed tools, as the docs use them: the CLI dumps a fixture prompt and the installed
# compare_npy.py checks it against the fixture; the gdb printers and the docs are there.
run(${prefix}/bin/gemma3 dump --model ${CHECKPOINT} --ids-npy ${CHECKPOINT}/p1_input_ids.npy
    --out ${WORK_DIR}/dump)
run(${prefix}/share/gemma3/scripts/compare_npy.py ${WORK_DIR}/dump ${CHECKPOINT} --ref-prefix p1_
    --atol 1e-4 --skip input_ids --skip mask_* --skip decode_logits)
foreach(file share/gemma3/scripts/hf_dump.py share/gemma3/gdb/eigen_printers.py
             share/doc/gemma3/python.md)
  if(NOT EXISTS ${prefix}/${file})
    message(FATAL_ERROR "the installed package lacks ${file}")
  endif()
endforeach()
