// A small vision transformer (7x7 patches, width 64, 4 heads, 4 pre-norm blocks with GELU MLPs,
// class token; examples/models.h) trained with AdamW (decay 0.05 on weights only), a warmed-up
// cosine schedule and random shifts: the documented recipe for at least 98% test accuracy.
#include "examples/example_main.h"
#include "examples/models.h"

int main(int argc, char** argv) {
  kiln::examples::Example e{
      "mnist_vit",
      "Small vision transformer (16 patch tokens + class token, width 64, 4 heads, 4 blocks) on "
      "MNIST, AdamW, warmed-up cosine schedule, random shifts.",
      kiln::examples::MnistVit,
      "adamw",
      /*epochs=*/20,
      /*batch_size=*/64,
      /*lr=*/1e-3,
      /*log_every=*/200,
      /*predict=*/"",
      /*lr_schedule=*/"cosine,warmup:500",
      /*random_shift=*/2,
      /*weight_decay=*/0.05,
      kiln::examples::VitDecays};
  return kiln::examples::RunExample(argc, argv, e);
}
