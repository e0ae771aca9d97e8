// LibTorch peer for bench/run.sh: PyTorch's C++ frontend on the same models, batch sizes, data
// (preloaded as float tensors, batches gathered through a per-epoch permutation), thread count (2),
// warm-up (200 steps) and timing (median of timed epochs) as bench/kiln_bench.cc. It is the fair
// peer where per-step overhead matters, since Python's overhead dominates tiny steps.
//   libtorch_peer DATA_DIR EPOCHS [model ...]
// Models as kiln_bench's, including the scaling table's cnn-b<batch>-w<width>. BENCH_STEPS=N:
// rounds of N steps (at most 200 of warm-up), training only.
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/idx.h"

namespace {

namespace nn = torch::nn;

// MNIST's mean and standard deviation, as Kiln's ResNet and ViT normalize their pixels.
struct NormalizeImpl : nn::Module {
  torch::Tensor forward(torch::Tensor x) { return (x - 0.1307) * (1 / 0.3081); }
};
TORCH_MODULE(Normalize);

// conv (no bias) + batch norm.
struct ConvBnImpl : nn::Module {
  ConvBnImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride)
      : conv(register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, kernel)
                                                    .stride(stride)
                                                    .padding(kernel / 2)
                                                    .bias(false)))),
        bn(register_module("bn", nn::BatchNorm2d(out))) {}
  torch::Tensor forward(torch::Tensor x) { return bn->forward(conv->forward(x)); }
  nn::Conv2d conv;
  nn::BatchNorm2d bn;
};
TORCH_MODULE(ConvBn);

// examples/models.cc's BasicBlock: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)).
struct BasicBlockImpl : nn::Module {
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride)
      : a(register_module("a", ConvBn(in, out, 3, stride))),
        b(register_module("b", ConvBn(out, out, 3, 1))) {
    if (stride != 1 || in != out) down = register_module("down", ConvBn(in, out, 1, stride));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor y = b->forward(torch::relu(a->forward(x)));
    return torch::relu(y + (down ? down->forward(x) : x));
  }
  ConvBn a, b, down{nullptr};
};
TORCH_MODULE(BasicBlock);

// The ViT's block: pre-norm multi-head attention (separate Q, K, V, output projections, 4 heads)
// and a GELU(tanh) MLP 64-128-64.
struct BlockImpl : nn::Module {
  BlockImpl()
      : norm1(register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({64})))),
        norm2(register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({64})))),
        q(register_module("q", nn::Linear(64, 64))),
        k(register_module("k", nn::Linear(64, 64))),
        v(register_module("v", nn::Linear(64, 64))),
        out(register_module("out", nn::Linear(64, 64))),
        fc1(register_module("fc1", nn::Linear(64, 128))),
        fc2(register_module("fc2", nn::Linear(128, 64))) {}
  torch::Tensor forward(torch::Tensor x) {
    const int64_t b = x.size(0), t = x.size(1);
    torch::Tensor a = norm1->forward(x);
    auto split = [&](torch::Tensor y) { return y.reshape({b, t, 4, 16}).transpose(1, 2); };
    torch::Tensor qh = split(q->forward(a)), kh = split(k->forward(a)), vh = split(v->forward(a));
    torch::Tensor att = torch::softmax(torch::matmul(qh, kh.transpose(-2, -1)) * 0.25, -1);
    x = x + out->forward(torch::matmul(att, vh).transpose(1, 2).reshape({b, t, 64}));
    return x + fc2->forward(torch::gelu(fc1->forward(norm2->forward(x)), "tanh"));
  }
  nn::LayerNorm norm1, norm2;
  nn::Linear q, k, v, out, fc1, fc2;
};
TORCH_MODULE(Block);

// examples/models.cc's MnistVit: 7x7 patches, class token, width 64, 4 blocks.
struct VitImpl : nn::Module {
  VitImpl()
      : patch_embed(register_module("patch_embed", nn::Linear(49, 64))),
        norm(register_module("norm", nn::LayerNorm(nn::LayerNormOptions({64})))),
        head(register_module("head", nn::Linear(64, 10))) {
    cls_token = register_parameter("cls_token", torch::randn({1, 1, 64}) * 0.02);
    pos_embed = register_parameter("pos_embed", torch::randn({1, 17, 64}) * 0.02);
    for (int i = 0; i < 4; ++i)
      blocks.push_back(register_module("block" + std::to_string(i), Block()));
  }
  torch::Tensor forward(torch::Tensor pixels) {
    const int64_t b = pixels.size(0);
    torch::Tensor x = ((pixels - 0.1307) * (1 / 0.3081)).reshape({b, 4, 7, 4, 7}).transpose(2, 3);
    x = patch_embed->forward(x.reshape({b, 16, 49}));
    x = torch::cat({cls_token.expand({b, 1, 64}), x}, 1) + pos_embed;
    for (Block& block : blocks) x = block->forward(x);
    return head->forward(norm->forward(x).select(1, 0));
  }
  nn::Linear patch_embed;
  nn::LayerNorm norm;
  nn::Linear head;
  std::vector<Block> blocks;
  torch::Tensor cls_token, pos_embed;
};
TORCH_MODULE(Vit);

// The optimizer of each model's Kiln recipe: SGD, Adam for the ResNet, AdamW for the ViT (decay
// 0.05 on weights only: not biases, norms or embeddings).
std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const std::string& name, nn::Sequential& net,
                                                       double lr) {
  if (name == "resnet") {
    return std::make_unique<torch::optim::Adam>(net->parameters(), torch::optim::AdamOptions(lr));
  }
  if (name == "vit") {
    std::vector<torch::Tensor> decay, rest;
    for (const auto& p : net->named_parameters()) {
      const std::string& n = p.key();
      const bool weight = n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0;
      (weight && n.find("norm") == std::string::npos ? decay : rest).push_back(p.value());
    }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(lr).weight_decay(0.05)));
    groups.emplace_back(rest, std::make_unique<torch::optim::AdamWOptions>(
                                  torch::optim::AdamWOptions(lr).weight_decay(0)));
    return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(lr));
  }
  return std::make_unique<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(lr));
}

nn::Sequential Model(const std::string& name, int64_t* batch, double* lr) {
  namespace nn = torch::nn;
  *batch = 64;
  *lr = 0.01;
  if (name.rfind("cnn-", 0) == 0) {  // cnn-b<batch>-w<width>, checked by kiln_bench's rule
    int64_t width = 20;
    for (size_t p = 3; p < name.size();) {
      const size_t q = std::min(name.find('-', p + 1), name.size());
      const int64_t v = std::atoll(name.substr(p + 2, q - p - 2).c_str());
      if (q - p < 3 || v < 1 || (name[p + 1] != 'b' && name[p + 1] != 'w')) {
        std::fprintf(stderr, "error: %s: expected cnn-b<batch>-w<width>\n", name.c_str());
        return nullptr;
      }
      (name[p + 1] == 'b' ? *batch : width) = v;
      p = q;
    }
    return nn::Sequential(nn::Unflatten(nn::UnflattenOptions(1, {1, 28, 28})),
                          nn::Conv2d(nn::Conv2dOptions(1, width, 5).padding(2)), nn::ReLU(),
                          nn::MaxPool2d(2),
                          nn::Conv2d(nn::Conv2dOptions(width, width, 5).padding(2)), nn::ReLU(),
                          nn::MaxPool2d(2), nn::Flatten(), nn::Linear(width * 49, 10));
  }
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
  if (name == "resnet") {
    *lr = 2e-3;
    return nn::Sequential(
        Normalize(), nn::Unflatten(nn::UnflattenOptions(1, {1, 28, 28})), ConvBn(1, 16, 3, 1),
        nn::ReLU(), BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2),
        nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)), nn::Flatten(), nn::Linear(64, 10));
  }
  if (name == "vit") {
    *lr = 1e-3;
    return nn::Sequential(Vit());
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
  const char* steps_env = std::getenv("BENCH_STEPS");
  const int64_t round_steps = steps_env ? std::atoll(steps_env) : 0;
  std::vector<std::string> models;
  for (int i = 3; i < argc; ++i) models.push_back(argv[i]);
  if (models.empty()) models = {"linear", "softmax", "mlp", "cnn", "lenet5"};
  for (const std::string& name : models) {
    int64_t batch;
    double lr;
    torch::nn::Sequential net = Model(name, &batch, &lr);
    if (!net) continue;
    std::unique_ptr<torch::optim::Optimizer> opt_owner = MakeOptimizer(name, net, lr);
    torch::optim::Optimizer& opt = *opt_owner;
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
    epoch(round_steps > 0 ? std::min<int64_t>(round_steps, 200) : 200);
    std::vector<double> rates;
    for (int e = 0; e < epochs; ++e) {
      auto t0 = std::chrono::steady_clock::now();
      int64_t images = epoch(round_steps > 0 ? round_steps : steps);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rates.push_back(images / s);
    }
    std::sort(rates.begin(), rates.end());
    // Evaluation: forward over the test set in batches of 1000 without autograd, median of 3.
    std::vector<double> eval_rates = {0, 0, 0};
    double accuracy = 0;
    if (round_steps == 0) {
      eval_rates.clear();
      torch::NoGradGuard no_grad;
      net->eval();  // batch norm from its running statistics
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
        "\"epochs_timed\": %d, \"steps\": %lld, \"config\": \"LibTorch %s, %d threads, "
        "OPENBLAS_CORETYPE=%s\"}\n",
        name.c_str(), static_cast<long long>(batch), rates[rates.size() / 2], eval_rates[1],
        accuracy, usage.ru_maxrss / 1024.0, epochs, static_cast<long long>(round_steps),
        TORCH_VERSION, torch::get_num_threads(), coretype ? coretype : "auto");
    std::fflush(stdout);
  }
  return 0;
}
