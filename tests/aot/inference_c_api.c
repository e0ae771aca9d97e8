/* The exported inference library from C: opens mnist_cnn_train's model with a checkpoint, classifies
   the 10,000 MNIST test images through the C API and prints the accuracy. Bad input is an error.
   usage: inference_c_api CHECKPOINT MNIST_DIR */
#include <stdio.h>
#include <stdlib.h>

#include "mnist_cnn_train_inference.h"

static unsigned char* ReadIdx(const char* dir, const char* name, long header, long* size) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f) - header;
  fseek(f, header, SEEK_SET);
  unsigned char* data = malloc(n);
  if (fread(data, 1, n, f) != (size_t)n) n = -1;
  fclose(f);
  *size = n;
  return data;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  char error[512];
  if (mnist_cnn_train_open("/nonexistent.safetensors", error, sizeof(error)) != NULL) return 1;
  printf("bad checkpoint: %s\n", error);
  mnist_cnn_train_model* m = mnist_cnn_train_open(argv[1], error, sizeof(error));
  if (!m) {
    printf("error: %s\n", error);
    return 1;
  }
  long np, nl;
  unsigned char* pixels = ReadIdx(argv[2], "t10k-images-idx3-ubyte", 16, &np);
  unsigned char* labels = ReadIdx(argv[2], "t10k-labels-idx1-ubyte", 8, &nl);
  if (!pixels || !labels || np != nl * mnist_cnn_train_EXAMPLE_SIZE) return 1;
  int* pred = malloc(sizeof(int) * nl);
  if (mnist_cnn_train_predict(m, pixels, nl, pred) != 0) return 1;
  long correct = 0;
  for (long i = 0; i < nl; ++i) correct += pred[i] == labels[i];
  printf("C API: %ld / %ld correct\n", correct, nl);
  mnist_cnn_train_close(m);
  return 0;
}
