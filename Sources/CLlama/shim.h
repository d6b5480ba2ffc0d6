// llama.cpp as built by scripts/setup-llama; <repo>/.llama points at its cache entry.
#include "../../.llama/include/llama.h"
#include "../../.llama/include/mtmd.h"
