// LibTorch peer for bench/run.sh: PyTorch's C++ frontend on the same models, batch sizes, data
// (preloaded as float tensors, batches gathered through a per-epoch permutation), thread count (2),
// warm-up (200 steps) and timing (median of timed epochs) as bench/kiln_bench.cc. It is the fair
// peer where per-step overhead matters, since Python's overhead dominates tiny steps.
//   libtorch_peer DATA_DIR EPOCHS [model ...]
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/idx.h"

namespace {

torch::nn::Sequential Model(const std::string& name, int64_t* batch, double* lr) {
  namespace nn = torch::nn;
  *batch = 64;
  *lr = 0.01;
  if (name == "linear") {
    *batch = 16;
    *lr = 0.001;
    return nn::Sequential(nn::Linear(784, 1));
  }
  if (name == "softmax") {
    *lr = 0.2;
    return nn::Sequential(nn::Linear(784, 10));
  }
  if (name == "mlp") {
    *lr = 0.1;
    return nn::Sequential(nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
  }
  if (name == "cnn") {
    return nn::Sequential(nn::Unflatten(nn::UnflattenOptions(1, {1, 28, 28})),
                          nn::Conv2d(nn::Conv2dOptions(1, 20, 5).padding(2)), nn::ReLU(),
                          nn::MaxPool2d(2), nn::Conv2d(nn::Conv2dOptions(20, 20, 5).padding(2)),
                          nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(980, 10));
  }
  if (name == "lenet5") {
    return nn::Sequential(nn::Unflatten(nn::UnflattenOptions(1, {1, 28, 28})),
                          nn::Conv2d(nn::Conv2dOptions(1, 6, 5).padding(2)), nn::ReLU(),
                          nn::MaxPool2d(2), nn::Conv2d(nn::Conv2dOptions(6, 16, 5)), nn::ReLU(),
                          nn::MaxPool2d(2), nn::Flatten(), nn::Linear(400, 120), nn::ReLU(),
                          nn::Linear(120, 84), nn::ReLU(), nn::Linear(84, 10));
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: libtorch_peer DATA_DIR EPOCHS [model ...]\n");
    return 2;
  }
  torch::set_num_threads(2);
  torch::manual_seed(1);
  auto data = kiln::LoadMnist(argv[1], kiln::MnistSplit::kTrain);
  auto test = kiln::LoadMnist(argv[1], kiln::MnistSplit::kTest);
  if (!data.ok() || !test.ok()) {
    std::fprintf(stderr, "error: %s\n",
                 std::string((data.ok() ? test.status() : data.status()).message()).c_str());
    return 1;
  }
  const int64_t nt = test->count;
  torch::Tensor xt = torch::from_blob(test->pixels.data(), {nt, 784}, torch::kUInt8)
                         .to(torch::kFloat32)
                         .div(255.0);
  torch::Tensor yt = torch::from_blob(test->labels.data(), {nt}, torch::kInt32).to(torch::kInt64);
  const int epochs = std::atoi(argv[2]);
  const int64_t n = data->count;
  torch::Tensor x =
      torch::from_blob(data->pixels.data(), {n, 784}, torch::kUInt8).to(torch::kFloat32).div(255.0);
  torch::Tensor y = torch::from_blob(data->labels.data(), {n}, torch::kInt32).to(torch::kInt64);
  torch::Tensor yf = y.to(torch::kFloat32).unsqueeze(1);
  std::vector<std::string> models;
  for (int i = 3; i < argc; ++i) models.push_back(argv[i]);
  if (models.empty()) models = {"linear", "softmax", "mlp", "cnn", "lenet5"};
  for (const std::string& name : models) {
    int64_t batch;
    double lr;
    torch::nn::Sequential net = Model(name, &batch, &lr);
    if (!net) continue;
    torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(lr));
    const int64_t steps = n / batch;
    auto epoch = [&](int64_t limit) {
      torch::Tensor perm = torch::randperm(n);
      for (int64_t b = 0; b < limit; ++b) {
        torch::Tensor i = perm.slice(0, b * batch, (b + 1) * batch);
        opt.zero_grad();
        torch::Tensor out = net->forward(x.index_select(0, i));
        torch::Tensor loss = name == "linear"
                                 ? torch::mse_loss(out, yf.index_select(0, i))
                                 : torch::nn::functional::cross_entropy(out, y.index_select(0, i));
        loss.backward();
        opt.step();
      }
      return limit * batch;
    };
    epoch(200);
    std::vector<double> rates;
    for (int e = 0; e < epochs; ++e) {
      auto t0 = std::chrono::steady_clock::now();
      int64_t images = epoch(steps);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rates.push_back(images / s);
    }
    std::sort(rates.begin(), rates.end());
    // Evaluation: forward over the test set in batches of 1000 without autograd, median of 3.
    std::vector<double> eval_rates;
    double accuracy = 0;
    {
      torch::NoGradGuard no_grad;
      for (int rep = 0; rep < 3; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        int64_t correct = 0;
        for (int64_t b = 0; b < nt; b += 1000) {
          torch::Tensor out = net->forward(xt.slice(0, b, std::min(nt, b + 1000)));
          torch::Tensor pred =
              name == "linear" ? torch::round(out).squeeze(1).to(torch::kInt64) : out.argmax(1);
          correct += pred.eq(yt.slice(0, b, std::min(nt, b + 1000))).sum().item<int64_t>();
        }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        eval_rates.push_back(nt / s);
        accuracy = static_cast<double>(correct) / nt;
      }
    }
    std::sort(eval_rates.begin(), eval_rates.end());
    rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    std::printf(
        "{\"peer\": \"libtorch\", \"model\": \"%s\", \"batch\": %lld, \"train_images_per_s\": "
        "%.0f, \"eval_images_per_s\": %.0f, \"test_accuracy\": %.4f, \"peak_rss_mb\": %.0f, "
        "\"epochs_timed\": %d, \"config\": \"LibTorch %s, %d threads, OPENBLAS_CORETYPE=%s\"}\n",
        name.c_str(), static_cast<long long>(batch), rates[rates.size() / 2], eval_rates[1],
        accuracy, usage.ru_maxrss / 1024.0, epochs, TORCH_VERSION, torch::get_num_threads(),
        coretype ? coretype : "auto");
    std::fflush(stdout);
  }
  return 0;
}
