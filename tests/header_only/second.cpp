// The second translation unit of first.cpp's program.
#include <trainpp/trainpp.hpp>
#if TRAINPP_HAS_DATASETS
#include <trainpp/data/fashion_mnist.hpp>
#endif
#if TRAINPP_HAS_TOKENIZERS
#include <trainpp/tokenizers.hpp>
#endif

int second_translation_unit() { return 2; }
