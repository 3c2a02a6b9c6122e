#include "bench/machine_load.h"

#include <cstdio>

namespace bench {

std::string LoadAverage() {
  std::FILE* file = std::fopen("/proc/loadavg", "r");
  double averages[3] = {0, 0, 0};
  bool read = file != nullptr &&
              std::fscanf(file, "%lf %lf %lf", &averages[0], &averages[1], &averages[2]) == 3;
  if (file != nullptr) std::fclose(file);
  if (!read) return "unknown";
  char text[64];
  std::snprintf(text, sizeof text, "%.2f %.2f %.2f", averages[0], averages[1], averages[2]);
  return text;
}

}  // namespace bench
