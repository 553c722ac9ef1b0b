// Two translation units of one program include every trainpp header in header-only mode. A definition
// that a header leaves without `inline` (a TRAINPP_DEFINITIONS block whose function lacks TRAINPP_INLINE)
// is then defined twice, and this program does not link; the compiled-mode tests cannot see that.
#include <trainpp/trainpp.hpp>
#if TRAINPP_HAS_DATASETS
#include <trainpp/data/fashion_mnist.hpp>
#endif
#if TRAINPP_HAS_TOKENIZERS
#include <trainpp/tokenizers.hpp>
#endif

#if !TRAINPP_DEFINITIONS
#error "this check is about header-only mode"
#endif

int second_translation_unit();

int main() { return second_translation_unit() == 2 ? 0 : 1; }
