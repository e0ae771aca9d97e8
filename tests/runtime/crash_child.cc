// The process tests/runtime/crash_safety_test.cc kills: trains a small softmax model on synthetic
// data, saving a full checkpoint after every epoch, and dies (SIGKILL, no clean-up) at a chosen
// step of a chosen save when asked.
//   crash_child DIR EPOCHS [resume] [POINT SAVE_NUMBER]
// POINT: opened, mid_write, before_fsync, after_fsync, before_rename, after_rename. At the end the
// final parameters are written to DIR/final.safetensors.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "compiler/model.h"
#include "dsl/api.h"
#include "runtime/safetensors.h"
#include "runtime/trainer.h"

namespace {

int kill_point = -1, kill_save = 0, saves = 0, writes = 0;

int Hook(kiln::SavePoint p, size_t*) {
  if (p == kiln::SavePoint::kOpened) {
    ++saves;
    writes = 0;
  }
  if (saves != kill_save) return 0;
  if (p == kiln::SavePoint::kWrite && ++writes != 2) return 0;  // mid-write: the second write
  if (static_cast<int>(p) == kill_point) std::raise(SIGKILL);
  return 0;
}

kiln::ModelDef Model(kiln::Graph& g, int64_t batch) {
  kiln::ModelDef m;
  kiln::Value x = g.Input("x", {batch, 64}, kiln::DType::kUInt8);
  kiln::Value y = g.Input("y", {batch}, kiln::DType::kInt32);
  kiln::Value logits = kiln::Linear(g, "fc", 64, 4)(kiln::UnitPixels(x));
  m.inputs = {x, y};
  m.loss = kiln::Mean(kiln::SoftmaxCrossEntropy(logits, y));
  m.eval_outputs = {{"prediction", kiln::ArgMax(logits, 1)}};
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const std::string dir = argv[1];
  const int epochs = std::atoi(argv[2]);
  bool resume = false;
  int a = 3;
  if (argc > a && std::strcmp(argv[a], "resume") == 0) resume = true, ++a;
  if (argc > a + 1) {
    const char* names[] = {"opened",      "mid_write",     "before_fsync",
                           "after_fsync", "before_rename", "after_rename"};
    for (int i = 0; i < 6; ++i) {
      if (std::strcmp(argv[a], names[i]) == 0) kill_point = i;
    }
    kill_save = std::atoi(argv[a + 1]);
    if (kill_point < 0) return 2;
    kiln::SetSaveFaultHookForTesting(Hook);
  }
  kiln::Dataset data;  // synthetic: the label is the quadrant of the brightest pixel
  data.count = 512;
  data.example_shape = {8, 8};
  uint32_t s = 7;
  for (int64_t i = 0; i < data.count; ++i) {
    int best = 0, best_v = -1;
    for (int k = 0; k < 64; ++k) {
      s = s * 1664525u + 1013904223u;
      int v = static_cast<int>(s >> 24);
      data.pixels.push_back(static_cast<uint8_t>(v));
      if (v > best_v) best_v = v, best = k;
    }
    data.labels.push_back((best / 8 >= 4) * 2 + (best % 8 >= 4));
  }
  kiln::CompileOptions o;
  o.cache_dir = dir + "/../compile_cache";
  kiln::Graph tg;
  auto step = kiln::CompileTrainStep(tg, Model(tg, 32), kiln::Adam(0.01), o);
  if (!step.ok()) return 3;
  kiln::Trainer t(step->get(), nullptr);
  if (!t.Initialize(1).ok()) return 4;
  const std::string ckpt = dir + "/ckpt.safetensors";
  if (resume) {
    if (FILE* f = std::fopen(ckpt.c_str(), "rb")) {
      std::fclose(f);
      if (absl::Status st = t.Load(ckpt); !st.ok()) {
        std::fprintf(stderr, "resume: %s\n", std::string(st.message()).c_str());
        return 5;
      }
    }
  }
  kiln::TrainConfig c = kiln::TrainConfig::Silent(epochs - t.epoch());
  c.on_epoch = [&](const kiln::EpochReport&) { return t.Save(ckpt); };
  if (c.epochs > 0 && !t.Train(data, c).ok()) return 6;
  return t.Save(dir + "/final.safetensors").ok() ? 0 : 7;
}
