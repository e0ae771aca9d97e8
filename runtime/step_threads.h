// The threads that run compiled steps' parallel loops. Halide's own pool hands a loop's tasks to
// whichever thread asks next, so consecutive loops over the same rows (a weight gradient, then the
// optimizer's pass over it) put a row on one core, then on the other, and the second core reads
// what the first wrote from the first core's cache. Here the tasks of every loop are cut into one
// contiguous range per thread, in thread order: row r of a loop over the same range lands on the
// same core loop after loop. A thread done with its range takes what is left of the others'
// (from their fronts), so an uneven loop still finishes in about half the time. Which thread runs
// a task changes no result (a task computes its own outputs). Measured against Halide's pool on
// 2 cores, interleaved pairs of bench/kiln_bench runs (2026-12-03): the MLP 784-128-64-10's
// training at batch 64 went from 230-286k to 320-347k images/s, the tutorial CNN's from 10.0-10.4k
// to 11.8-12.5k, softmax regression's from 1.03-1.38M to 1.32-1.37M. JIT steps, cached steps and
// AOT training binaries run their loops through it (the inference library keeps Halide's pool):
//
//   halide_set_custom_do_par_for(kiln::StepDoParFor);   // AOT / shared-object runtimes
//
// The thread count is HL_NUM_THREADS when set (as Halide's pool), else the number of cores.
#pragma once

#include <cstdint>

namespace kiln {

// A task of a parallel loop, as Halide's halide_task_t.
using StepTask = int (*)(void* user_context, int task_number, uint8_t* closure);

// Halide's halide_do_par_for_t: runs f(user_context, i, closure) for i in [min, min + size);
// returns the first non-zero result of a task, else 0. A loop started inside a task (a nested
// parallel loop) or while another thread's loop runs is run by the calling thread alone.
int StepDoParFor(void* user_context, StepTask f, int min, int size, uint8_t* closure);

// The number of threads loops run on (tests and diagnostics).
int StepThreads();

}  // namespace kiln
