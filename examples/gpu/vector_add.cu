// Adds two vectors of 2^24 floats on the GPU and checks the result on the
// CPU: the smallest program that proves a container got a working GPU.
#include <cstdio>
#include <vector>

__global__ void Add(const float* a, const float* b, float* sum, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) sum[i] = a[i] + b[i];
}

int main() {
  const int n = 1 << 24;
  std::vector<float> a(n, 1.0f), b(n, 2.0f), sum(n);
  float *device_a, *device_b, *device_sum;
  if (cudaMalloc(&device_a, n * sizeof(float)) != cudaSuccess ||
      cudaMalloc(&device_b, n * sizeof(float)) != cudaSuccess ||
      cudaMalloc(&device_sum, n * sizeof(float)) != cudaSuccess) {
    std::fprintf(stderr, "no GPU memory: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 1;
  }
  cudaMemcpy(device_a, a.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(device_b, b.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  Add<<<(n + 255) / 256, 256>>>(device_a, device_b, device_sum, n);
  cudaMemcpy(sum.data(), device_sum, n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaDeviceProp device{};
  cudaGetDeviceProperties(&device, 0);
  for (int i = 0; i < n; ++i) {
    if (sum[i] != 3.0f) {
      std::fprintf(stderr, "wrong sum at %d: %f\n", i, sum[i]);
      return 1;
    }
  }
  std::printf("%s: added %d floats, all 3.0\n", device.name, n);
  return 0;
}
