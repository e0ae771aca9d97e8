# kiln_add_training_binary: a model definition in C++ in, a standalone training executable out.
#
#   kiln_add_training_binary(NAME mnist_cnn_train MODEL models/mnist_cnn.cc
#                            BATCH_SIZE 64 [EVAL_BATCH_SIZE 1000] [TARGETS host portable]
#                            [TWO_PHASE] [LIBS extra libraries the model file needs])
#
# MODEL (one or more sources) defines `kiln::AotModel KilnAotModel()` (compiler/aot.h). A generator
# built from it runs at build time and writes the training and evaluation steps as Halide static
# libraries, one Halide runtime and the manifest; they are linked with Kiln's runtime only (no
# Halide, no LLVM, Abseil and the image libraries linked statically). TARGETS: `host` (this
# machine's CPU features, the default; the executable is NAME) and `portable` (x86-64 with AVX2 +
# FMA, for machines without AVX-512; NAME_portable). Each executable E comes with E_predict
# (classifies image files) and, in E_aot/, libE_inference_all.a and E_inference.h (a C API for
# inference). TWO_PHASE compiles the training step as a gradient phase and an update phase
# (CompileOptions::two_phase). scripts/kiln-aot.in builds the same four files without CMake.
function(kiln_add_training_binary)
  cmake_parse_arguments(K "TWO_PHASE" "NAME;BATCH_SIZE;EVAL_BATCH_SIZE;TRAIN_EXAMPLES" "MODEL;TARGETS;LIBS"
    ${ARGN})
  if(NOT K_NAME OR NOT K_MODEL OR NOT K_BATCH_SIZE)
    message(FATAL_ERROR "kiln_add_training_binary: NAME, MODEL and BATCH_SIZE are required")
  endif()
  if(NOT K_EVAL_BATCH_SIZE)
    set(K_EVAL_BATCH_SIZE 1000)
  endif()
  if(NOT K_TARGETS)
    set(K_TARGETS host)
  endif()
  if(NOT K_TRAIN_EXAMPLES)
    set(K_TRAIN_EXAMPLES 60000)
  endif()
  set(two_phase_flag)
  if(K_TWO_PHASE)
    set(two_phase_flag --two_phase)
  endif()
  add_executable(${K_NAME}_generator ${K_MODEL})
  target_link_libraries(${K_NAME}_generator PRIVATE Kiln::aot_generator ${K_LIBS})
  foreach(t IN LISTS K_TARGETS)
    set(gen_target ${t})
    if(t STREQUAL "host")
      set(exe ${K_NAME})
    elseif(t STREQUAL "portable")
      set(exe ${K_NAME}_portable)
    elseif(t STREQUAL "host-cuda")
      # Kernels as PTX for KILN_CUDA_CAPABILITY (e.g. 86; default 70: Volta and every later
      # chip, the driver JIT-compiles for newer ones). Builds without a GPU; libcuda is loaded
      # when the binary runs. The little host code is compiled for portable x86-64 (AVX2 + FMA):
      # a GPU binary is usually built on one machine and run on another.
      set(exe ${K_NAME}_cuda)
      set(gen_target portable-cuda)
      if(KILN_CUDA_CAPABILITY)
        set(gen_target "portable-cuda:${KILN_CUDA_CAPABILITY}")
      endif()
    else()
      message(FATAL_ERROR
        "kiln_add_training_binary: unknown target '${t}' (host, portable, host-cuda)")
    endif()
    set(out ${CMAKE_CURRENT_BINARY_DIR}/${exe}_aot)
    set(files ${out}/${exe}_train.a ${out}/${exe}_eval.a ${out}/${exe}_runtime.o
              ${out}/${exe}_program.cc ${out}/${exe}_manifest.json ${out}/${exe}_inference.h
              ${out}/${exe}_inference.cc ${out}/${exe}_predict.cc)
    set(train_libs ${out}/${exe}_train.a)
    if(K_TWO_PHASE)
      list(APPEND files ${out}/${exe}_update.a)
      list(APPEND train_libs ${out}/${exe}_update.a)
    endif()
    add_custom_command(
      OUTPUT ${files}
      COMMAND ${K_NAME}_generator --name=${exe} --out_dir=${out} --batch=${K_BATCH_SIZE}
              --eval_batch=${K_EVAL_BATCH_SIZE} --target=${gen_target}
              --train_examples=${K_TRAIN_EXAMPLES} ${two_phase_flag}
      DEPENDS ${K_NAME}_generator
      COMMENT "Compiling the training and evaluation steps of ${exe} ahead of time (${t})"
      VERBATIM)
    add_executable(${exe} ${out}/${exe}_program.cc)
    target_link_libraries(${exe} PRIVATE ${train_libs} ${out}/${exe}_eval.a
      ${out}/${exe}_runtime.o Kiln::aot_runtime)
    # Inference export: NAME_inference (a library with the C API of NAME_inference.h over the
    # evaluation step), NAME_predict (classifies image files), and lib<NAME>_inference_all.a, the
    # same library with everything it needs merged in, for projects built without CMake.
    add_library(${exe}_inference STATIC ${out}/${exe}_inference.cc)
    target_include_directories(${exe}_inference PUBLIC ${out})
    target_link_libraries(${exe}_inference PUBLIC ${out}/${exe}_eval.a ${out}/${exe}_runtime.o
      Kiln::aot_runtime)
    add_executable(${exe}_predict ${out}/${exe}_predict.cc)
    target_link_libraries(${exe}_predict PRIVATE ${exe}_inference)
    get_target_property(rt_libs Kiln::aot_runtime INTERFACE_LINK_LIBRARIES)
    set(mri "CREATE ${out}/lib${exe}_inference_all.a\nADDLIB $<TARGET_FILE:${exe}_inference>\n")
    string(APPEND mri "ADDLIB ${out}/${exe}_eval.a\nADDMOD ${out}/${exe}_runtime.o\n")
    string(APPEND mri "ADDLIB $<TARGET_FILE:Kiln::aot_runtime>\n")
    foreach(l IN LISTS rt_libs)
      if(l MATCHES "\\.a$")
        string(APPEND mri "ADDLIB ${l}\n")
      endif()
    endforeach()
    string(APPEND mri "SAVE\nEND\n")
    file(GENERATE OUTPUT ${out}/bundle_$<CONFIG>.mri CONTENT "${mri}")
    add_custom_command(OUTPUT ${out}/lib${exe}_inference_all.a
      COMMAND ${CMAKE_COMMAND} -E remove -f ${out}/lib${exe}_inference_all.a
      COMMAND ${CMAKE_AR} -M < ${out}/bundle_$<CONFIG>.mri
      DEPENDS ${exe}_inference Kiln::aot_runtime ${out}/${exe}_eval.a
      COMMENT "Bundling lib${exe}_inference_all.a")
    add_custom_target(${exe}_inference_bundle ALL DEPENDS ${out}/lib${exe}_inference_all.a)
  endforeach()
endfunction()
