// End to end on real MNIST (labelled "train", serialized by a resource lock): the softmax model
// reaches at least 0.90 test accuracy in one epoch, and the tutorial's linear model's loss goes
// down. Each model's steps are compiled once for the suite.
#include <cstdlib>

#include "compiler/model.h"
#include "examples/models.h"
#include "gtest/gtest.h"
#include "runtime/trainer.h"
#include "tests/mnist_fixture.h"

namespace kiln {
namespace {

class MnistE2eTest : public testing::MnistSuite {};

// A model's training and evaluation steps, compiled, with a trainer initialized over them.
struct Compiled {
  Graph tg, eg{Mode::kEval};
  std::unique_ptr<Executable> train, eval;
  std::unique_ptr<Trainer> trainer;
};

std::unique_ptr<Compiled> Compile(ModelDef (*model)(Graph&, int64_t), int64_t batch,
                                  const Optimizer& opt) {
  auto c = std::make_unique<Compiled>();
  auto train = CompileTrainStep(c->tg, model(c->tg, batch), opt, {});
  auto eval = CompileEvalStep(c->eg, model(c->eg, 1000), {});
  EXPECT_TRUE(train.ok()) << train.status();
  EXPECT_TRUE(eval.ok()) << eval.status();
  if (!train.ok() || !eval.ok()) return nullptr;
  c->train = std::move(*train);
  c->eval = std::move(*eval);
  c->trainer = std::make_unique<Trainer>(c->train.get(), c->eval.get());
  EXPECT_TRUE(c->trainer->Initialize(1).ok());
  return c;
}

TEST_F(MnistE2eTest, SoftmaxReaches90PercentInOneEpoch) {
  auto m = Compile(examples::MnistSoftmax, 64, Sgd(0.1));
  ASSERT_NE(m, nullptr);
  Trainer& t = *m->trainer;
  auto stats = t.Train(*train_, TrainConfig::Silent(1));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->steps, 60000 / 64);
  auto r = t.Evaluate(*test_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->count, 10000);
  EXPECT_GE(r->accuracy(), 0.90);
  // The training step's own accuracy count agrees in magnitude with the test accuracy.
  double train_acc = stats->metric_totals.at("correct") / static_cast<double>(stats->images);
  EXPECT_GT(train_acc, 0.8);
  std::printf("softmax, 1 epoch: test accuracy %.4f, %.0f train images/s\n", r->accuracy(),
              stats->images_per_second());
}

// tests/data/softmax_adam_before_split.safetensors was written by mnist_softmax (Adam 0.002,
// batch 64, 300 steps: inside the first epoch; test accuracy 0.8984) with the trainer as it was
// before it was split into its pieces; it must still load, evaluate alike and resume.
TEST_F(MnistE2eTest, ACheckpointWrittenBeforeTheTrainerSplitLoadsAndResumes) {
  auto m = Compile(examples::MnistSoftmax, 64, Adam(0.002));
  ASSERT_NE(m, nullptr);
  Trainer& t = *m->trainer;
  ASSERT_TRUE(
      t.Load(KILN_TEST_SOURCE_DIR "/tests/data/softmax_adam_before_split.safetensors").ok());
  EXPECT_EQ(t.step(), 300);
  EXPECT_EQ(t.epoch(), 0);
  EXPECT_EQ(t.batch_in_epoch(), 300);
  auto r = t.Evaluate(*test_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->correct, 8984);
  auto stats = t.Train(*train_, TrainConfig::Silent(1));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->steps, 60000 / 64 - 300);  // the rest of the first epoch
  EXPECT_EQ(t.epoch(), 1);
  EXPECT_EQ(t.batch_in_epoch(), 0);
}

TEST_F(MnistE2eTest, TutorialLinearModelLossGoesDown) {
  auto m = Compile(examples::MnistLinear, 16, Sgd(0.001));
  ASSERT_NE(m, nullptr);
  Trainer& t = *m->trainer;
  auto stats = t.Train(*train_, TrainConfig::Silent(2));
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->epochs.size(), 2u);
  // Predicting the mean digit (4.45) costs about 8.4; the model must beat that and improve.
  EXPECT_LT(stats->epochs[0].mean_loss, 8.0);
  EXPECT_LT(stats->epochs[1].mean_loss, stats->epochs[0].mean_loss);
  auto r = t.Evaluate(*test_);
  ASSERT_TRUE(r.ok());
  EXPECT_GT(r->accuracy(), 0.15);  // rounding a regression: poor, but well above chance
  std::printf("linear, 2 epochs: mean losses %.4f -> %.4f, test accuracy %.4f\n",
              stats->epochs[0].mean_loss, stats->epochs[1].mean_loss, r->accuracy());
}

TEST_F(MnistE2eTest, TutorialCnnPassesAModestBarAfter300Steps) {
  auto m = Compile(examples::MnistCnn, 64, Adam(2e-3));
  ASSERT_NE(m, nullptr);
  Trainer& t = *m->trainer;
  TrainConfig c = TrainConfig::Silent(1);
  c.max_steps = 300;
  auto stats = t.Train(*train_, c);
  ASSERT_TRUE(stats.ok()) << stats.status();
  auto r = t.Evaluate(*test_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->count, 10000);
  EXPECT_GE(r->accuracy(), 0.95);
  std::printf("cnn, 300 steps: test accuracy %.4f, %.0f train images/s, compile %.2f s\n",
              r->accuracy(), stats->images_per_second(), m->train->compile_seconds());
}

}  // namespace
}  // namespace kiln
