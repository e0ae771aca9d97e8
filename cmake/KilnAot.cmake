# kiln_add_training_binary: a model definition in C++ in, a standalone training executable out.
#
#   kiln_add_training_binary(NAME mnist_cnn_train MODEL models/mnist_cnn.cc
#                            BATCH_SIZE 64 [EVAL_BATCH_SIZE 1000] [TARGETS host portable]
#                            [LIBS extra libraries the model file needs])
#
# MODEL (one or more sources) defines `kiln::AotModel KilnAotModel()` (compiler/aot.h). A generator
# built from it runs at build time and writes the training and evaluation steps as Halide static
# libraries, one Halide runtime and the manifest; they are linked with Kiln's runtime only (no
# Halide, no LLVM, Abseil and the image libraries linked statically). TARGETS: `host` (this
# machine's CPU features, the default; the executable is NAME) and `portable` (x86-64 with AVX2 +
# FMA, for machines without AVX-512; NAME_portable).
function(kiln_add_training_binary)
  cmake_parse_arguments(K "" "NAME;BATCH_SIZE;EVAL_BATCH_SIZE" "MODEL;TARGETS;LIBS" ${ARGN})
  if(NOT K_NAME OR NOT K_MODEL OR NOT K_BATCH_SIZE)
    message(FATAL_ERROR "kiln_add_training_binary: NAME, MODEL and BATCH_SIZE are required")
  endif()
  if(NOT K_EVAL_BATCH_SIZE)
    set(K_EVAL_BATCH_SIZE 1000)
  endif()
  if(NOT K_TARGETS)
    set(K_TARGETS host)
  endif()
  add_executable(${K_NAME}_generator ${K_MODEL})
  target_link_libraries(${K_NAME}_generator PRIVATE Kiln::aot_generator ${K_LIBS})
  foreach(t IN LISTS K_TARGETS)
    if(t STREQUAL "host")
      set(exe ${K_NAME})
    elseif(t STREQUAL "portable")
      set(exe ${K_NAME}_portable)
    else()
      message(FATAL_ERROR "kiln_add_training_binary: unknown target '${t}' (host, portable)")
    endif()
    set(out ${CMAKE_CURRENT_BINARY_DIR}/${exe}_aot)
    set(files ${out}/${exe}_train.a ${out}/${exe}_eval.a ${out}/${exe}_runtime.o
              ${out}/${exe}_program.cc ${out}/${exe}_manifest.json)
    add_custom_command(
      OUTPUT ${files}
      COMMAND ${K_NAME}_generator --name=${exe} --out_dir=${out} --batch=${K_BATCH_SIZE}
              --eval_batch=${K_EVAL_BATCH_SIZE} --target=${t}
      DEPENDS ${K_NAME}_generator
      COMMENT "Compiling the training and evaluation steps of ${exe} ahead of time (${t})"
      VERBATIM)
    add_executable(${exe} ${out}/${exe}_program.cc)
    target_link_libraries(${exe} PRIVATE ${out}/${exe}_train.a ${out}/${exe}_eval.a
      ${out}/${exe}_runtime.o Kiln::aot_runtime)
  endforeach()
endfunction()
